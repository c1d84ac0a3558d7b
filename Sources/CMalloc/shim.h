// glibc facilities that Swift's Glibc module leaves out: malloc tuning (mallopt and its M_*
// parameters), and prctl, which is variadic and so cannot be called from Swift directly.
#include <malloc.h>
#include <signal.h>
#include <sys/prctl.h>

// Asks the kernel to send SIGKILL to this process when its parent dies. Returns prctl's result.
static inline int lethe_kill_when_parent_dies(void) { return prctl(PR_SET_PDEATHSIG, SIGKILL); }
