/*
 * Fuzz target: the vault's field format, which is read back from the database (a tampered
 * or damaged row must be refused, never misread). The input is read as a sealed field
 * (kr_vault_field_version, kr_vault_open_raw), then sealed as a plaintext and opened
 * again. Invariants: a field opens to exactly what was sealed; with any one byte changed
 * (the input's first byte picks which) it does not open at all.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kr_vault.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char key[KR_KEY_LEN] = "0123456789abcdef0123456789abcdef";
#define WS	"11111111-1111-4111-8111-111111111111"
#define REC	"22222222-2222-4222-8222-222222222222"

static enum kr_vault_err
open_field(const unsigned char *ct, size_t len, char **plain, size_t *plainlen)
{
	return kr_vault_open_raw(key, "provider_key", WS, REC, "secret", ct, len, plain,
	    plainlen);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *ct = NULL;
	char *plain = NULL;
	size_t ctlen = 0, plainlen = 0;
	uint32_t version;

	(void)kr_vault_field_version(data, size, &version);
	if (open_field(data, size, &plain, &plainlen) == KR_VAULT_OK)
		abort();		/* a forged tag: 2^-128 */
	if (kr_vault_seal_raw(key, 7, "provider_key", WS, REC, "secret", data, size, &ct,
	    &ctlen) != KR_VAULT_OK)
		abort();
	if (open_field(ct, ctlen, &plain, &plainlen) != KR_VAULT_OK || plainlen != size ||
	    memcmp(plain, data, size) != 0 || plain[size] != '\0' ||
	    kr_vault_field_version(ct, ctlen, &version) != KR_VAULT_OK || version != 7)
		abort();
	free(plain);
	plain = NULL;
	ct[(size > 0 ? data[0] : 0) % ctlen] ^= 0x01;
	if (open_field(ct, ctlen, &plain, &plainlen) == KR_VAULT_OK)
		abort();
	free(ct);
	return 0;
}
