#include "kr_providers.h"

#include <string.h>
#include <strings.h>

static const struct kr_provider providers[KR_PROV__MAX] = {
	{ KR_PROV_ANTHROPIC, "anthropic", "Anthropic", KR_PROTO_ANTHROPIC,
	    "https://api.anthropic.com", "claude-sonnet-4-5-20250929", "ANTHROPIC_API_KEY",
	    "/v1/models" },
	{ KR_PROV_OPENAI, "openai", "OpenAI", KR_PROTO_OPENAI, "https://api.openai.com/v1",
	    "gpt-4o-mini", "OPENAI_API_KEY", "/models" },
	{ KR_PROV_GOOGLE, "google", "Google Gemini", KR_PROTO_GEMINI,
	    "https://generativelanguage.googleapis.com/v1beta", "gemini-2.5-flash",
	    "GEMINI_API_KEY", "/models" },
	{ KR_PROV_ZAI, "zai", "Z.ai", KR_PROTO_OPENAI, "https://api.z.ai/api/paas/v4", "glm-5",
	    "ZAI_API_KEY", "/models" },
	{ KR_PROV_MOONSHOT, "moonshot", "Moonshot", KR_PROTO_OPENAI, "https://api.moonshot.ai/v1",
	    "moonshot-v1-8k", "MOONSHOT_API_KEY", "/users/me/balance" },
	{ KR_PROV_OPENAI_COMPATIBLE, "openai_compatible", "OpenAI-compatible", KR_PROTO_OPENAI,
	    NULL, NULL, NULL, "/models" },
};

const struct kr_provider *
kr_provider_get(enum kr_provider_id id)
{
	return (unsigned)id < KR_PROV__MAX ? &providers[id] : NULL;
}

const struct kr_provider *
kr_provider_find(const char *slug)
{
	for (unsigned i = 0; slug != NULL && i < KR_PROV__MAX; i++)
		if (strcmp(providers[i].slug, slug) == 0)
			return &providers[i];
	return NULL;
}

const char *
kr_protocol_name(enum kr_protocol p)
{
	static const char *const names[] = { "anthropic", "openai", "gemini" };

	return (unsigned)p < 3 ? names[p] : "unknown";
}

const char *
kr_provider_base_url(const struct kr_config *cfg, const struct kr_provider *p,
    const char *workspace_url)
{
	if (workspace_url != NULL && *workspace_url != '\0')
		return kr_base_url_allowed(cfg, workspace_url) ? workspace_url : NULL;
	if (cfg->provider_base_url[p->id] != NULL)
		return cfg->provider_base_url[p->id];
	return p->default_base_url;
}

/* Length of the origin (scheme://authority) at the start of url; 0 if not a URL. */
static size_t
origin_len(const char *url)
{
	const char *s = strstr(url, "://");
	size_t n;

	if (s == NULL || s == url)
		return 0;
	s += 3;
	n = strcspn(s, "/?#");
	return n > 0 ? (size_t)(s - url) + n : 0;
}

int
kr_base_url_allowlisted(const struct kr_config *cfg, const char *url)
{
	const char *list = cfg->base_url_allowlist, *p;
	size_t olen = origin_len(url);

	if (list == NULL || olen == 0)
		return 0;
	for (p = list; *p != '\0';) {
		size_t n;
		while (*p == ',' || *p == ' ')
			p++;
		n = strcspn(p, ", ");
		while (n > 0 && p[n - 1] == '/')
			n--;	/* "http://host:port/" lists the same origin */
		if (n == olen && strncasecmp(p, url, n) == 0)
			return 1;
		p += strcspn(p, ",");
	}
	return 0;
}

int
kr_base_url_allowed(const struct kr_config *cfg, const char *url)
{
	if (url == NULL || origin_len(url) == 0 || strpbrk(url, " \t\r\n\"'<>\\") != NULL)
		return 0;
	if (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0)
		return 0;
	return kr_base_url_allowlisted(cfg, url);
}
