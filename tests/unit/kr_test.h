/*
 * A minimal test harness: one behaviour per CHECK, a line per failure, and a non-zero exit
 * when anything failed. ctest runs each test_*.c as its own program.
 */
#ifndef KR_TEST_H
#define KR_TEST_H

#include <stdio.h>
#include <string.h>

static int kr_test_failures;
static int kr_test_checks;

#define CHECK(cond) do {						\
	kr_test_checks++;						\
	if (!(cond)) {							\
		kr_test_failures++;					\
		fprintf(stderr, "%s:%d: CHECK failed: %s\n",		\
		    __FILE__, __LINE__, #cond);				\
	}								\
} while (0)

/* A check that failed where it stands (an unexpected branch), with what went wrong. */
#define FAIL(what) do {							\
	kr_test_checks++;						\
	kr_test_failures++;						\
	fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, (what));	\
} while (0)

#define CHECK_STR(a, b) do {						\
	const char *kr_a_ = (a), *kr_b_ = (b);				\
	kr_test_checks++;						\
	if (kr_a_ == NULL || kr_b_ == NULL || strcmp(kr_a_, kr_b_) != 0) { \
		kr_test_failures++;					\
		fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__,	\
		    __LINE__, kr_a_ ? kr_a_ : "(null)",			\
		    kr_b_ ? kr_b_ : "(null)");				\
	}								\
} while (0)

static inline int
kr_test_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, kr_test_checks, kr_test_failures);
	return kr_test_failures == 0 ? 0 : 1;
}

#endif
