// OpenBLAS through its CBLAS interface (Debian libopenblas-dev, pthread flavour).
#include <cblas.h>

// OpenBLAS extensions (declared in cblas.h on Debian; repeated here for clarity of intent):
// openblas_set_num_threads, openblas_get_num_threads, openblas_get_corename.
