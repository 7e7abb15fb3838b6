/*
 * kr_json and kr_time: reading request fields (present, absent, null, wrong type), the JSON
 * writer helpers and the text they serialise to, database and RFC 3339 times both ways
 * (with the rejections), and UUIDv7 ids (RFC 9562: version, variant, uniqueness, order).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "kr_json.h"
#include "kr_time.h"
#include "kr_test.h"

/* As resp_json() serialises answers. */
static const char *
text_of(json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
}

static const char fields[] =
    "{\"s\":\"hi\",\"empty\":\"\",\"nul\":\"a\\u0000b\",\"utf8\":\"\xc3\xa9t\xc3\xa9\","
    "\"null\":null,\"i\":5,\"zero\":0,\"neg\":-7,\"f\":1.5,\"f0\":1.0,\"e\":1e3,"
    "\"q\":\"3\",\"t\":true,\"fa\":false,\"st\":\"true\",\"a\":[1],\"o\":{\"i\":1},"
    "\"max\":9223372036854775807,\"min\":-9223372036854775808}";

static void
test_read_str(void)
{
	json_object *o = json_tokener_parse(fields);
	const char *s = NULL;
	size_t n = 99;

	CHECK(o != NULL);
	CHECK(kr_json_str(o, "s", &s, &n) == KR_JSON_OK);
	CHECK_STR(s, "hi");
	CHECK(n == 2);
	CHECK(kr_json_str(o, "empty", &s, &n) == KR_JSON_OK);
	CHECK_STR(s, "");
	CHECK(n == 0);
	/* The length is the JSON string's, NUL characters included. */
	CHECK(kr_json_str(o, "nul", &s, &n) == KR_JSON_OK);
	CHECK(n == 3 && memcmp(s, "a\0b", 3) == 0);
	CHECK(kr_json_str(o, "utf8", &s, &n) == KR_JSON_OK);
	CHECK(n == 5);
	CHECK(kr_json_str(o, "s", &s, NULL) == KR_JSON_OK);	/* len is optional */
	/* Absent and null are the same; any other type is KR_JSON_TYPE. */
	CHECK(kr_json_str(o, "missing", &s, &n) == KR_JSON_ABSENT);
	CHECK(kr_json_str(o, "null", &s, &n) == KR_JSON_ABSENT);
	CHECK(kr_json_str(o, "i", &s, &n) == KR_JSON_TYPE);
	CHECK(kr_json_str(o, "f", &s, &n) == KR_JSON_TYPE);
	CHECK(kr_json_str(o, "t", &s, &n) == KR_JSON_TYPE);
	CHECK(kr_json_str(o, "a", &s, &n) == KR_JSON_TYPE);
	CHECK(kr_json_str(o, "o", &s, &n) == KR_JSON_TYPE);
	/* Keys are exact: no case folding, no path into nested objects. */
	CHECK(kr_json_str(o, "S", &s, &n) == KR_JSON_ABSENT);
	CHECK(kr_json_str(o, "o.i", &s, &n) == KR_JSON_ABSENT);
	/* No body at all (a POST without one): everything is absent. */
	CHECK(kr_json_str(NULL, "s", &s, &n) == KR_JSON_ABSENT);
	json_object_put(o);
}

static void
test_read_bool(void)
{
	json_object *o = json_tokener_parse(fields);
	int b = 7;

	CHECK(kr_json_bool(o, "t", &b) == KR_JSON_OK && b == 1);
	CHECK(kr_json_bool(o, "fa", &b) == KR_JSON_OK && b == 0);
	CHECK(kr_json_bool(o, "missing", &b) == KR_JSON_ABSENT);
	CHECK(kr_json_bool(o, "null", &b) == KR_JSON_ABSENT);
	CHECK(kr_json_bool(o, "st", &b) == KR_JSON_TYPE);	/* "true" is a string */
	CHECK(kr_json_bool(o, "i", &b) == KR_JSON_TYPE);
	CHECK(kr_json_bool(o, "zero", &b) == KR_JSON_TYPE);
	CHECK(kr_json_bool(o, "empty", &b) == KR_JSON_TYPE);
	CHECK(kr_json_bool(o, "a", &b) == KR_JSON_TYPE);
	CHECK(kr_json_bool(NULL, "t", &b) == KR_JSON_ABSENT);
	json_object_put(o);
}

static void
test_read_int(void)
{
	json_object *o = json_tokener_parse(fields), *big;
	long long v = 99;

	CHECK(kr_json_int(o, "i", &v) == KR_JSON_OK && v == 5);
	CHECK(kr_json_int(o, "zero", &v) == KR_JSON_OK && v == 0);
	CHECK(kr_json_int(o, "neg", &v) == KR_JSON_OK && v == -7);
	CHECK(kr_json_int(o, "max", &v) == KR_JSON_OK && v == INT64_MAX);
	CHECK(kr_json_int(o, "min", &v) == KR_JSON_OK && v == INT64_MIN);
	CHECK(kr_json_int(o, "missing", &v) == KR_JSON_ABSENT);
	CHECK(kr_json_int(o, "null", &v) == KR_JSON_ABSENT);
	/* 1.5, 1.0 and 1e3 are numbers but not integers; "3" is a string. */
	CHECK(kr_json_int(o, "f", &v) == KR_JSON_TYPE);
	CHECK(kr_json_int(o, "f0", &v) == KR_JSON_TYPE);
	CHECK(kr_json_int(o, "e", &v) == KR_JSON_TYPE);
	CHECK(kr_json_int(o, "q", &v) == KR_JSON_TYPE);
	CHECK(kr_json_int(o, "t", &v) == KR_JSON_TYPE);
	CHECK(kr_json_int(o, "o", &v) == KR_JSON_TYPE);
	CHECK(kr_json_int(NULL, "i", &v) == KR_JSON_ABSENT);
	json_object_put(o);

	/*
	 * Integers above INT64_MAX are no int64: json-c keeps them as unsigned integers (itself
	 * clamping past UINT64_MAX) and json_object_get_int64() clamps them to INT64_MAX, so
	 * they must not come back as INT64_MAX. (Below INT64_MIN json-c's tokener already
	 * clamps while parsing, out of kr_json_int's sight: not checked.)
	 */
	big = json_tokener_parse("{\"u\":9223372036854775808,\"w\":18446744073709551616}");
	CHECK(big != NULL);
	v = 0;
	CHECK(kr_json_int(big, "u", &v) != KR_JSON_OK || v != INT64_MAX);
	v = 0;
	CHECK(kr_json_int(big, "w", &v) != KR_JSON_OK || v != INT64_MAX);
	json_object_put(big);
}

static void
test_write(void)
{
	json_object *o = json_object_new_object();

	kr_json_add_str(o, "s", "plain");
	kr_json_add_str(o, "null", NULL);
	kr_json_add_str(o, "esc", "q\"b\\n\n\t\x01/</script>");
	kr_json_add_str(o, "utf8", "\xc3\xa9\xe2\x82\xac");
	kr_json_add_int(o, "i", 0);
	kr_json_add_int(o, "neg", -42);
	kr_json_add_int(o, "max", INT64_MAX);
	kr_json_add_int(o, "min", INT64_MIN);
	kr_json_add_bool(o, "t", 1);
	kr_json_add_bool(o, "two", 2);
	kr_json_add_bool(o, "minus", -1);
	kr_json_add_bool(o, "f", 0);
	kr_json_add_time(o, "at", "2026-11-21 22:49:05.123");
	kr_json_add_time(o, "whole", "2026-11-21 22:49:05");
	kr_json_add_time(o, "never", NULL);
	kr_json_add_time(o, "junk", "yesterday");
	CHECK_STR(text_of(o),
	    "{\"s\":\"plain\",\"null\":null,"
	    "\"esc\":\"q\\\"b\\\\n\\n\\t\\u0001/</script>\","
	    "\"utf8\":\"\xc3\xa9\xe2\x82\xac\","
	    "\"i\":0,\"neg\":-42,\"max\":9223372036854775807,\"min\":-9223372036854775808,"
	    "\"t\":true,\"two\":true,\"minus\":true,\"f\":false,"
	    "\"at\":\"2026-11-21T22:49:05.123Z\",\"whole\":\"2026-11-21T22:49:05.000Z\","
	    "\"never\":null,\"junk\":null}");
	/* Adding a key again replaces it. */
	kr_json_add_str(o, "s", "again");
	kr_json_add_int(o, "null", 1);
	{
		const char *s = NULL;
		long long v = 0;
		CHECK(kr_json_str(o, "s", &s, NULL) == KR_JSON_OK);
		CHECK_STR(s, "again");
		CHECK(kr_json_int(o, "null", &v) == KR_JSON_OK && v == 1);
		CHECK(json_object_object_length(o) == 16);
	}
	json_object_put(o);
}

static void
test_time_from_db(void)
{
	char out[KR_TIME_MAX];

	CHECK(kr_time_from_db("2026-11-21 22:49:05.123", out) == 0);
	CHECK_STR(out, "2026-11-21T22:49:05.123Z");
	CHECK(kr_time_from_db("2026-11-21 22:49:05", out) == 0);
	CHECK_STR(out, "2026-11-21T22:49:05.000Z");
	CHECK(kr_time_from_db("2026-01-02 03:04:05.1", out) == 0);
	CHECK_STR(out, "2026-01-02T03:04:05.100Z");
	CHECK(kr_time_from_db("2026-01-02 03:04:05.123456", out) == 0);	/* DATETIME(6) */
	CHECK_STR(out, "2026-01-02T03:04:05.123Z");
	CHECK(kr_time_from_db("1970-01-01 00:00:00.000", out) == 0);
	CHECK_STR(out, "1970-01-01T00:00:00.000Z");

	CHECK(kr_time_from_db(NULL, out) == -1);
	CHECK(kr_time_from_db("", out) == -1);
	CHECK(kr_time_from_db("2026-11-21", out) == -1);
	CHECK(kr_time_from_db("2026-11-21 22:49", out) == -1);
	CHECK(kr_time_from_db("2026-11-21T22:49:05.123", out) == -1);
	CHECK(kr_time_from_db("2026-1-21 22:49:05.123", out) == -1);
	CHECK(kr_time_from_db("2026/11/21 22:49:05.123", out) == -1);
	CHECK(kr_time_from_db("20261121 224905", out) == -1);
	/* "Returns -1 when s is not of that form": nothing may follow the fraction. */
	CHECK(kr_time_from_db("2026-11-21 22:49:05 junk", out) == -1);
	CHECK(kr_time_from_db("2026-11-21 22:49:05.12x", out) == -1);
}

static void
test_time_to_db(void)
{
	static const char *const bad[] = {
		"2026-02-30T00:00:00Z",		/* no such day */
		"2026-02-29T00:00:00Z",		/* not a leap year */
		"2026-13-01T00:00:00Z",		/* month 13 */
		"2026-00-10T00:00:00Z",		/* month 0 */
		"2026-04-31T00:00:00Z",
		"2026-11-00T00:00:00Z",
		"2026-11-21T24:00:00Z",
		"2026-11-21T23:60:00Z",
		"2026-11-21T23:59:61Z",
		"2026-11-21T22:49:05",		/* missing Z */
		"2026-11-21T22:49:05.123",
		"2026-11-21T22:49:05+02:00",	/* offsets other than UTC */
		"2026-11-21T22:49:05.123-05:00",
		"2026-11-21T22:49:05-00:00",
		"2026-11-21T22:49:05+0000",
		"2026-11-21 22:49:05Z",		/* the database's separator */
		"2026-11-21T22:49:05ZZ",
		"2026-11-21T22:49:05Z ",
		" 2026-11-21T22:49:05Z",
		"2026-11-21T22:49Z",
		"2026-11-21",
		"0999-01-01T00:00:00Z",
		"2026-11-21T22:49:05.12aZ",
		"",
		"yesterday",
		NULL,
	};
	char out[KR_TIME_MAX], back[KR_TIME_MAX], now[KR_TIME_MAX];

	CHECK(kr_time_to_db("2026-11-21T22:49:05.123Z", out) == 0);
	CHECK_STR(out, "2026-11-21 22:49:05.123");
	CHECK(kr_time_to_db("2026-11-21T22:49:05Z", out) == 0);
	CHECK_STR(out, "2026-11-21 22:49:05.000");
	CHECK(kr_time_to_db("2026-11-21T22:49:05.1Z", out) == 0);
	CHECK_STR(out, "2026-11-21 22:49:05.100");
	CHECK(kr_time_to_db("2026-11-21T22:49:05.123+00:00", out) == 0);
	CHECK_STR(out, "2026-11-21 22:49:05.123");
	/* Fraction digits beyond milliseconds are truncated, not rounded. */
	CHECK(kr_time_to_db("2026-11-21T22:49:05.123999999Z", out) == 0);
	CHECK_STR(out, "2026-11-21 22:49:05.123");
	CHECK(kr_time_to_db("2024-02-29T23:59:59.999Z", out) == 0);	/* a leap day */
	CHECK_STR(out, "2024-02-29 23:59:59.999");
	CHECK(kr_time_to_db("2000-02-29T00:00:00Z", out) == 0);
	CHECK(kr_time_to_db("1900-02-29T00:00:00Z", out) == -1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = kr_time_to_db(bad[i], out);
		if (rc != -1)
			fprintf(stderr, "  kr_time_to_db accepted \"%s\"\n", bad[i] ? bad[i] : "NULL");
		CHECK(rc == -1);
	}
	/* RFC 3339 time-secfrac is "." 1*DIGIT: a bare '.' is no fraction. */
	CHECK(kr_time_to_db("2026-11-21T22:49:05.Z", out) == -1);

	/* Round trips. */
	CHECK(kr_time_from_db("2031-07-04 12:34:56.789", out) == 0);
	CHECK(kr_time_to_db(out, back) == 0);
	CHECK_STR(back, "2031-07-04 12:34:56.789");
	CHECK(kr_time_to_db("1999-12-31T23:59:59.001Z", out) == 0);
	CHECK(kr_time_from_db(out, back) == 0);
	CHECK_STR(back, "1999-12-31T23:59:59.001Z");
	/* The current time is in the API's form and goes to the database. */
	kr_time_now_rfc3339(now);
	CHECK(strlen(now) == 24 && now[10] == 'T' && now[19] == '.' && now[23] == 'Z');
	CHECK(kr_time_to_db(now, out) == 0);
	CHECK(kr_time_from_db(out, back) == 0);
	CHECK_STR(back, now);
}

/* 1 when s is a lower-case UUIDv7 with the RFC 9562 variant. */
static int
is_v7(const char *s)
{
	if (strlen(s) != KR_UUID_LEN)
		return 0;
	for (size_t i = 0; i < KR_UUID_LEN; i++) {
		char c = s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return 0;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	return s[14] == '7' && strchr("89ab", s[19]) != NULL;
}

/* The 48-bit millisecond timestamp at the front of a UUIDv7. */
static uint64_t
uuid_ms(const char *s)
{
	char hex[13];

	memcpy(hex, s, 8);
	memcpy(hex + 8, s + 9, 4);
	hex[12] = '\0';
	return (uint64_t)strtoull(hex, NULL, 16);
}

static int
cmp_ids(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void
test_uuid(void)
{
	static char ids[1000][KR_UUID_MAX];
	char a[KR_UUID_MAX], b[KR_UUID_MAX];
	struct timespec ts, two_ms = { 0, 2000000L };
	uint64_t now_ms;
	size_t dups = 0, bad = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	kr_uuid_new(a);
	CHECK(is_v7(a));
	CHECK(kr_uuid_valid(a));
	CHECK(uuid_ms(a) >= now_ms && uuid_ms(a) < now_ms + 1000);

	for (size_t i = 0; i < 1000; i++) {
		kr_uuid_new(ids[i]);
		bad += !is_v7(ids[i]) || !kr_uuid_valid(ids[i]);
	}
	CHECK(bad == 0);
	qsort(ids, 1000, sizeof(ids[0]), cmp_ids);
	for (size_t i = 1; i < 1000; i++)
		dups += strcmp(ids[i - 1], ids[i]) == 0;
	CHECK(dups == 0);

	/* Ids made at least a millisecond apart sort in the order they were made. */
	for (int i = 0; i < 5; i++) {
		kr_uuid_new(a);
		nanosleep(&two_ms, NULL);
		kr_uuid_new(b);
		CHECK(strcmp(a, b) < 0);
		CHECK(uuid_ms(b) >= uuid_ms(a) + 2);
	}
}

static void
test_uuid_valid(void)
{
	static const char *const bad[] = {
		"",
		"0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7",		/* short */
		"0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b0",	/* long */
		"0192F3C4-5D6E-7F80-9A1B-2C3D4E5F6A7B",		/* upper case */
		"0192f3c45d6e7f809a1b2c3d4e5f6a7b",		/* no hyphens */
		"0192f3c4-5d6e7-f80-9a1b-2c3d4e5f6a7b",		/* hyphen misplaced */
		"0192f3c4_5d6e_7f80_9a1b_2c3d4e5f6a7b",
		"0192f3g4-5d6e-7f80-9a1b-2c3d4e5f6a7b",		/* not hex */
		"{0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b}",
		" 0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b",
		"0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b ",
		"../../../../etc/passwd/../../../../x",
		"0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7\n",
	};

	CHECK(kr_uuid_valid("0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b"));
	CHECK(kr_uuid_valid("00000000-0000-0000-0000-000000000000"));
	/* Any version in that form (ids may come from elsewhere). */
	CHECK(kr_uuid_valid("550e8400-e29b-41d4-a716-446655440000"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (kr_uuid_valid(bad[i]))
			fprintf(stderr, "  kr_uuid_valid accepted \"%s\"\n", bad[i]);
		CHECK(!kr_uuid_valid(bad[i]));
	}
}

int
main(void)
{
	test_read_str();
	test_read_bool();
	test_read_int();
	test_write();
	test_time_from_db();
	test_time_to_db();
	test_uuid();
	test_uuid_valid();
	return kr_test_done("test_json");
}
