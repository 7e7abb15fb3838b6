/*
 * kr_json: small helpers over json-c for reading request fields and building answers.
 * Handlers never print JSON themselves.
 */
#ifndef KR_JSON_H
#define KR_JSON_H

#include <stddef.h>

#include <json-c/json.h>

enum kr_json_err {
	KR_JSON_OK = 0,
	KR_JSON_ABSENT,		/* the key is missing or null */
	KR_JSON_TYPE,		/* present with another type */
};

/* Read obj[key]. *out points into obj (valid while obj lives). */
enum kr_json_err	kr_json_str(json_object *obj, const char *key, const char **out,
			    size_t *len);
enum kr_json_err	kr_json_bool(json_object *obj, const char *key, int *out);
/* Integers only: 1.5 or "3" are KR_JSON_TYPE. */
enum kr_json_err	kr_json_int(json_object *obj, const char *key, long long *out);

/*
 * Characters (code points) of the n bytes of UTF-8 at s, as the API and the database count a
 * field's length; s is valid UTF-8 (json-c checked it, or the database will).
 */
size_t	kr_utf8_chars(const char *s, size_t n);

/* Add key: value to obj; a NULL string adds null. */
void	kr_json_add_str(json_object *obj, const char *key, const char *val);
/* A DATETIME(3) text from the database as an RFC 3339 string; NULL (or garbage) adds null. */
void	kr_json_add_time(json_object *obj, const char *key, const char *dbtime);
void	kr_json_add_int(json_object *obj, const char *key, long long val);
void	kr_json_add_bool(json_object *obj, const char *key, int val);

#endif
