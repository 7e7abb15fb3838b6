/*
 * kr_prices: what a provider call cost, from the model_prices table (USD per million
 * input and output tokens, defaults for every default model, edited by hand in the
 * database). Each model's prices are read at most once a minute per process.
 */
#ifndef KR_PRICES_H
#define KR_PRICES_H

#include "kr_db.h"

/*
 * Cost in USD of input_tokens and output_tokens (negative counts as 0) of provider's
 * model: 0 for a model the table does not price, or when the read fails.
 */
double	kr_price_cost(struct kr_db *db, const char *provider, const char *model,
	    long long input_tokens, long long output_tokens);

#endif
