/*
 * kr_providers: the registry of AI providers keyrelay can use (providers.md), and where
 * their APIs live for this instance.
 */
#ifndef KR_PROVIDERS_H
#define KR_PROVIDERS_H

#include "kr_config.h"

enum kr_protocol {
	KR_PROTO_ANTHROPIC,	/* anthropic messages */
	KR_PROTO_OPENAI,	/* openai chat completions */
	KR_PROTO_GEMINI,	/* gemini generateContent */
};

/* Same order as the provider.*_base_url settings in kr_config. */
enum kr_provider_id {
	KR_PROV_ANTHROPIC,
	KR_PROV_OPENAI,
	KR_PROV_GOOGLE,
	KR_PROV_ZAI,
	KR_PROV_MOONSHOT,
	KR_PROV_OPENAI_COMPATIBLE,
	KR_PROV__MAX
};

struct kr_provider {
	enum kr_provider_id	 id;
	const char		*slug;		/* "anthropic": the API's provider id */
	const char		*name;		/* "Anthropic" */
	enum kr_protocol	 protocol;
	const char		*default_base_url; /* NULL: set per workspace */
	const char		*default_model;	/* NULL: set per workspace */
	const char		*env_var;	/* system key variable, NULL: none */
	const char		*check_path;	/* zero-token key check, under the base URL */
};

const struct kr_provider	*kr_provider_get(enum kr_provider_id id);
/* NULL for an unknown slug. */
const struct kr_provider	*kr_provider_find(const char *slug);
const char			*kr_protocol_name(enum kr_protocol p);

/*
 * The base URL for calls to p: the workspace's own (may be NULL), else the instance
 * configuration, else the provider's default. NULL when there is none, or when the
 * workspace's own is no longer allowed (kr_base_url_allowed: the allowlist changed since
 * it was set); never the default instead, which would send its keys somewhere else.
 */
const char	*kr_provider_base_url(const struct kr_config *cfg, const struct kr_provider *p,
		    const char *workspace_url);
/*
 * 1 when a workspace may set url as a base URL: a well-formed http(s) URL whose origin
 * (scheme://host[:port]) is listed in base_url_allowlist, since the stored key is sent
 * there. Instance-configured base URLs are trusted and need no check.
 */
int		kr_base_url_allowed(const struct kr_config *cfg, const char *url);
/*
 * 1 when the origin of url is listed in the allowlist. Outbound calls use https only,
 * unless the origin is allowlisted (which also permits loopback and private addresses).
 */
int		kr_base_url_allowlisted(const struct kr_config *cfg, const char *url);

#endif
