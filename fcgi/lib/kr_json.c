#include "kr_json.h"

#include <stdint.h>
#include <string.h>

#include "kr_time.h"

static json_object *
get(json_object *obj, const char *key)
{
	json_object *v = NULL;

	if (obj == NULL || !json_object_object_get_ex(obj, key, &v))
		return NULL;
	return v;	/* NULL for a JSON null too */
}

enum kr_json_err
kr_json_str(json_object *obj, const char *key, const char **out, size_t *len)
{
	json_object *v = get(obj, key);

	if (v == NULL)
		return KR_JSON_ABSENT;
	if (!json_object_is_type(v, json_type_string))
		return KR_JSON_TYPE;
	*out = json_object_get_string(v);
	if (len != NULL)
		*len = (size_t)json_object_get_string_len(v);
	return KR_JSON_OK;
}

enum kr_json_err
kr_json_bool(json_object *obj, const char *key, int *out)
{
	json_object *v = get(obj, key);

	if (v == NULL)
		return KR_JSON_ABSENT;
	if (!json_object_is_type(v, json_type_boolean))
		return KR_JSON_TYPE;
	*out = json_object_get_boolean(v) ? 1 : 0;
	return KR_JSON_OK;
}

enum kr_json_err
kr_json_int(json_object *obj, const char *key, long long *out)
{
	json_object *v = get(obj, key);

	if (v == NULL)
		return KR_JSON_ABSENT;
	if (!json_object_is_type(v, json_type_int))
		return KR_JSON_TYPE;
	*out = (long long)json_object_get_int64(v);
	/* json-c keeps integers above INT64_MAX as unsigned and clamps them here; below
	 * INT64_MIN it clamped while parsing, out of our sight (callers check ranges). */
	if (*out == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)
		return KR_JSON_TYPE;
	return KR_JSON_OK;
}

void
kr_json_add_str(json_object *obj, const char *key, const char *val)
{
	json_object_object_add(obj, key, val != NULL ? json_object_new_string(val) : NULL);
}

void
kr_json_add_time(json_object *obj, const char *key, const char *dbtime)
{
	char t[KR_TIME_MAX];

	kr_json_add_str(obj, key, kr_time_from_db(dbtime, t) == 0 ? t : NULL);
}

void
kr_json_add_int(json_object *obj, const char *key, long long val)
{
	json_object_object_add(obj, key, json_object_new_int64(val));
}

void
kr_json_add_bool(json_object *obj, const char *key, int val)
{
	json_object_object_add(obj, key, json_object_new_boolean(val != 0));
}

size_t
kr_utf8_chars(const char *s, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			c++;
	return c;
}
