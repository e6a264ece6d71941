/*
 * clock.c: the current time, in epoch milliseconds.  KDS_NOW replaces it,
 * so that tests can put records in the past; kds(7) documents it as such.
 */
#include <stdlib.h>
#include <time.h>

#include "internal.h"

int64_t
kds_now_ms(void)
{
	const char *fake = getenv("KDS_NOW");
	struct timespec ts;
	int64_t ms;

	if (fake != NULL && *fake != '\0' && kds_parse_time(fake, &ms) == 0)
		return ms;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
