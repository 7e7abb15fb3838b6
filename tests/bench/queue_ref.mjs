// Same-run reference for the runner benchmark: the work of tests/bench/runner_bench.py done by
// pg-boss (PostgreSQL) and BullMQ (Redis) with the simplest worker each. Every job is one
// POST /v1/messages to the same stub (tests/bench/fast_stub.c) and its answer is stored with
// the job (pg-boss: complete(queue, id, answer), one durable UPDATE per job; BullMQ: the
// processor's return value). Driven by tests/bench/queues.sh.
//
//   node queue_ref.mjs enqueue pgboss|bullmq --queue Q --jobs N (--pg URL | --redis PORT)
//   node queue_ref.mjs work    pgboss|bullmq --queue Q --jobs N --concurrency C --stub URL
//                              (--pg URL | --redis PORT)
// `work` prints one JSON line: {"wall_s", "peak_rss_mb", "completed"}; its clock starts once
// the worker is connected, so connecting and enqueueing are not counted.
import { readFileSync } from 'node:fs'
import http from 'node:http'
import { createRequire } from 'node:module'

const require = createRequire(process.env.QUEUE_REF_MODULES + '/')
const [cmd, kind, ...rest] = process.argv.slice(2)
const opt = {}
for (let i = 0; i < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1]
const N = Number(opt.jobs)
const C = Number(opt.concurrency || 1)
const LANE = 25 // pg-boss: jobs fetched per fetch() call; lanes = ceil(C / LANE)
const body = JSON.stringify({
  model: 'claude-sonnet-4-5-20250929',
  max_tokens: 64,
  messages: [{ role: 'user', content: 'Benchmark job' }]
})

function hwmMb () {
  const m = /VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))
  return m ? Number(m[1]) / 1024 : 0
}

// node:http with a keep-alive agent, one socket per concurrent job: cheaper per call than
// fetch() (undici) on Node 18, so the queues are measured at their best.
const agent = new http.Agent({ keepAlive: true, maxSockets: C })
const stubUrl = new URL(opt.stub || 'http://127.0.0.1/')
const headers = {
  'content-type': 'application/json',
  'content-length': Buffer.byteLength(body),
  'x-api-key': 'sk-ant-bench-0001-0123456789abcdef',
  'anthropic-version': '2023-06-01'
}

function call () {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: stubUrl.hostname,
      port: stubUrl.port,
      path: stubUrl.pathname.replace(/\/$/, '') + '/v1/messages',
      method: 'POST',
      agent,
      headers
    }, res => {
      const chunks = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error('stub answered ' + res.statusCode))
        try {
          const j = JSON.parse(Buffer.concat(chunks).toString())
          resolve({ text: j.content[0].text, usage: j.usage, model: j.model })
        } catch (e) {
          reject(e)
        }
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function pgboss () {
  const PgBoss = require('pg-boss')
  const boss = new PgBoss({ connectionString: opt.pg, max: 20, schedule: false, supervise: false })
  boss.on('error', e => console.error('pg-boss:', e.message))
  await boss.start()
  if (cmd === 'enqueue') {
    await boss.createQueue(opt.queue)
    for (let i = 0; i < N; i += 1000) {
      const jobs = []
      for (let k = i; k < Math.min(N, i + 1000); k++) jobs.push({ name: opt.queue, data: { i: k } })
      await boss.insert(jobs)
    }
    await boss.stop({ graceful: false, wait: true })
    return null
  }
  let done = 0
  let last = 0
  const t0 = performance.now()
  const lane = async size => {
    while (done < N) {
      const jobs = await boss.fetch(opt.queue, { batchSize: size })
      if (!jobs || jobs.length === 0) {
        await sleep(20)
        continue
      }
      await Promise.all(jobs.map(async job => {
        await boss.complete(opt.queue, job.id, await call())
        done++
        last = performance.now()
      }))
    }
  }
  const lanes = []
  for (let left = C; left > 0; left -= LANE) lanes.push(lane(Math.min(LANE, left)))
  await Promise.all(lanes)
  const res = { wall_s: (last - t0) / 1000, peak_rss_mb: hwmMb(), completed: done }
  await boss.stop({ graceful: false, wait: true })
  return res
}

async function bullmq () {
  const { Queue, Worker } = require('bullmq')
  const connection = { host: '127.0.0.1', port: Number(opt.redis), maxRetriesPerRequest: null }
  if (cmd === 'enqueue') {
    const q = new Queue(opt.queue, { connection })
    for (let i = 0; i < N; i += 1000) {
      const jobs = []
      for (let k = i; k < Math.min(N, i + 1000); k++) jobs.push({ name: 'job', data: { i: k } })
      await q.addBulk(jobs)
    }
    await q.close()
    return null
  }
  let done = 0
  let last = 0
  let finish
  const all = new Promise(resolve => { finish = resolve })
  const t0 = performance.now()
  const w = new Worker(opt.queue, async () => call(), { connection, concurrency: C })
  w.on('completed', () => {
    last = performance.now()
    if (++done === N) finish()
  })
  w.on('failed', (job, err) => console.error('bullmq failed:', err.message))
  await all
  const res = { wall_s: (last - t0) / 1000, peak_rss_mb: hwmMb(), completed: done }
  await w.close()
  return res
}

const res = await (kind === 'pgboss' ? pgboss() : bullmq())
if (res) console.log(JSON.stringify(res))
process.exit(0)
