/* fg_prom.h - what both planes need to expose Prometheus metrics (text format 0.0.4):
 * label-value escaping and the standard process_* figures read from /proc. */
#ifndef FG_PROM_H
#define FG_PROM_H

#include <stddef.h>
#include <stdint.h>

/** Escape `n` bytes of `s` (stopping at a NUL) as a label value ('\\', '"' and newline
 *  escaped) into `out` (`cap` bytes, NUL-terminated, cut short when full). */
void fg_prom_label(char *out, size_t cap, const char *s, size_t n);

typedef struct fg_proc_stats {
    uint64_t cpu_us;    /* user + system CPU time of the process (all threads) */
    uint64_t rss_bytes; /* resident set size */
    uint64_t open_fds;  /* open file descriptors */
} fg_proc_stats_t;

/** This process's figures; a figure that cannot be read is 0. */
void fg_proc_stats(fg_proc_stats_t *out);

#endif
