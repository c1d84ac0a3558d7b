// glibc facilities that Swift's Glibc module leaves out: malloc tuning (mallopt and its M_*
// parameters), prctl, which is variadic and so cannot be called from Swift directly, and
// stdout's error flag (Swift 6 refuses to read the global `stdout` from Swift).
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>

// Nonzero when a write to stdout's stream failed since it was opened (ferror(stdout)).
static inline int lethe_stdout_error(void) { return ferror(stdout); }

// Asks the kernel to send SIGKILL to this process when its parent dies. Returns prctl's result.
static inline int lethe_kill_when_parent_dies(void) { return prctl(PR_SET_PDEATHSIG, SIGKILL); }
