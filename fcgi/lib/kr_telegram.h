/*
 * kr_telegram: the Telegram Bot API client of kr_notify. One sendMessage is prepared as a
 * curl easy handle, which the caller runs (curl_easy_perform, or in a multi handle with
 * others), then reads with kr_tg_finish.
 *
 * The request is POST {telegram_base_url}/bot<token>/sendMessage {"chat_id","text"}: https
 * only unless the origin is allowlisted (kr_base_url_allowlisted, which also lets the
 * address check pass loopback and private addresses), no redirects, connect and total
 * timeouts, a response-size cap, TLS verification. The token is part of the URL (Telegram's
 * design): URLs are never logged, and every error message is scrubbed of the token.
 */
#ifndef KR_TELEGRAM_H
#define KR_TELEGRAM_H

#include <stddef.h>

#include <curl/curl.h>

#include "kr_buf.h"
#include "kr_config.h"
#include "kr_outbound.h"

#define KR_TG_ERR_MAX	500	/* bytes of an outcome's error message */

/* One sendMessage call, prepared as a curl easy handle (CURLOPT_PRIVATE is the kr_tg_msg). */
struct kr_tg_msg {
	CURL			*easy;
	struct curl_slist	*hdrs;
	char			*url;		/* holds the token: wiped on release */
	size_t			 urllen;
	char			*body;
	char			*token;		/* our copy, to scrub messages; wiped on release */
	size_t			 tokenlen;
	struct kr_buf		 resp;
	struct kr_outbound_guard	 guard;		/* loopback and private addresses: allowlisted */
	int			 done;		/* the transfer ended with rc */
	CURLcode		 rc;
	char			 errbuf[CURL_ERROR_SIZE];
};

/* What a send came to. */
struct kr_tg_outcome {
	int	ok;
	int	permanent;		/* the request itself was refused: do not retry */
	int	deferred;		/* not refused, only put off (429, database away) */
	long	retry_after_s;		/* Telegram's hint, 0: none */
	char	migrate_to[24];		/* the chat's new id (a group became a supergroup) */
	char	error[KR_TG_ERR_MAX + 1];
};

/*
 * Prepare a sendMessage of text to chat with the bot token (copied; the caller still wipes
 * its own). Texts longer than Telegram takes are cut, with "…". 0, or -1 with err set (no
 * secret in it); m is released then.
 */
int	kr_tg_prepare(const struct kr_config *cfg, const char *token, size_t tokenlen,
	    const char *chat, const char *text, struct kr_tg_msg *m, char *err, size_t errlen);
/* What the transfer of m that ended with rc came to. */
void	kr_tg_finish(struct kr_tg_msg *m, CURLcode rc, struct kr_tg_outcome *out);
/* Free m, its easy handle included, wiping the copies of the token. */
void	kr_tg_release(struct kr_tg_msg *m);

#endif
