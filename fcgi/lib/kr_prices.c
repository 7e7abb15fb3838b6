#include "kr_prices.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kr_time.h"

/*
 * The cache: the table is edited by hand now and then, and a query per job would be
 * waste. A model read longer than PRICE_TTL_MS ago is read again; when the cache is full,
 * the model read longest ago makes room.
 */
#define PRICE_CACHE	32
#define PRICE_TTL_MS	60000

static const char sql_price[] =
    "SELECT input_per_mtok, output_per_mtok FROM model_prices WHERE provider = ? AND model = ?";

struct price {
	char	provider[33], model[129];
	double	in, out;
	int64_t	read_ms;
};

static pthread_mutex_t price_lock = PTHREAD_MUTEX_INITIALIZER;
static struct price prices[PRICE_CACHE];
static unsigned nprices;

static int
price_cached(const char *provider, const char *model, double *in, double *out)
{
	int64_t now = kr_time_mono_ms();
	int hit = 0;

	pthread_mutex_lock(&price_lock);
	for (unsigned i = 0; i < nprices && !hit; i++)
		if (now - prices[i].read_ms < PRICE_TTL_MS &&
		    strcmp(prices[i].provider, provider) == 0 &&
		    strcmp(prices[i].model, model) == 0) {
			*in = prices[i].in;
			*out = prices[i].out;
			hit = 1;
		}
	pthread_mutex_unlock(&price_lock);
	return hit;
}

static void
price_store(const char *provider, const char *model, double in, double out)
{
	unsigned i, oldest = 0;

	pthread_mutex_lock(&price_lock);
	for (i = 0; i < nprices; i++) {
		if (strcmp(prices[i].provider, provider) == 0 && strcmp(prices[i].model, model) == 0)
			break;
		if (prices[i].read_ms < prices[oldest].read_ms)
			oldest = i;
	}
	if (i == nprices)
		i = nprices < PRICE_CACHE ? nprices++ : oldest;
	snprintf(prices[i].provider, sizeof(prices[i].provider), "%s", provider);
	snprintf(prices[i].model, sizeof(prices[i].model), "%s", model);
	prices[i].in = in;
	prices[i].out = out;
	prices[i].read_ms = kr_time_mono_ms();
	pthread_mutex_unlock(&price_lock);
}

double
kr_price_cost(struct kr_db *db, const char *provider, const char *model,
    long long input_tokens, long long output_tokens)
{
	struct kr_dbp p[2] = { KR_P_STR(provider), KR_P_STR(model) };
	long long in = input_tokens > 0 ? input_tokens : 0;
	long long out = output_tokens > 0 ? output_tokens : 0;
	struct kr_db_res res;
	double pin = 0, pout = 0;

	if (!price_cached(provider, model, &pin, &pout)) {
		if (kr_db_exec(db, sql_price, p, 2, &res, NULL) != KR_DB_OK)
			return 0;
		if (res.nrows == 1) {
			pin = strtod(kr_db_cell(&res, 0, 0), NULL);
			pout = strtod(kr_db_cell(&res, 0, 1), NULL);
		}
		kr_db_res_free(&res);
		price_store(provider, model, pin, pout);
	}
	return ((double)in * pin + (double)out * pout) / 1e6;
}
