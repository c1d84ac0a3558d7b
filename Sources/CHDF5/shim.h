// HDF5 1.10 (Debian libhdf5-dev, serial flavour) for Swift.
//
// Swift cannot import HDF5's type and property-list macros: they expand to
// `(H5open(), H5T_NATIVE_FLOAT_g)` and similar. Each one is wrapped here in a
// static inline function, so clang evaluates the macro (including the implicit
// H5open()) and Swift sees a plain call.
#include <hdf5.h>

static inline hid_t lethe_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t lethe_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t lethe_H5T_NATIVE_INT8(void) { return H5T_NATIVE_INT8; }
static inline hid_t lethe_H5T_NATIVE_UINT8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t lethe_H5T_NATIVE_INT32(void) { return H5T_NATIVE_INT32; }
static inline hid_t lethe_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t lethe_H5T_NATIVE_UINT64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t lethe_H5T_IEEE_F32LE(void) { return H5T_IEEE_F32LE; }
static inline hid_t lethe_H5T_STD_I64LE(void) { return H5T_STD_I64LE; }
static inline hid_t lethe_H5T_C_S1(void) { return H5T_C_S1; }
static inline hid_t lethe_H5T_IEEE_F64LE(void) { return H5T_IEEE_F64LE; }
static inline hid_t lethe_H5T_STD_U8LE(void) { return H5T_STD_U8LE; }
static inline size_t lethe_H5T_VARIABLE(void) { return H5T_VARIABLE; }

static inline hid_t lethe_H5P_FILE_ACCESS(void) { return H5P_FILE_ACCESS; }
static inline hid_t lethe_H5P_FILE_CREATE(void) { return H5P_FILE_CREATE; }
static inline hid_t lethe_H5P_DATASET_CREATE(void) { return H5P_DATASET_CREATE; }
static inline hid_t lethe_H5P_GROUP_CREATE(void) { return H5P_GROUP_CREATE; }
static inline hid_t lethe_H5P_LINK_CREATE(void) { return H5P_LINK_CREATE; }
static inline hid_t lethe_H5P_DEFAULT(void) { return H5P_DEFAULT; }

static inline unsigned lethe_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline unsigned lethe_H5F_ACC_RDWR(void) { return H5F_ACC_RDWR; }
static inline unsigned lethe_H5F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
static inline unsigned lethe_H5F_ACC_EXCL(void) { return H5F_ACC_EXCL; }
static inline hsize_t lethe_H5S_UNLIMITED(void) { return H5S_UNLIMITED; }
static inline hid_t lethe_H5S_ALL(void) { return H5S_ALL; }
static inline hid_t lethe_H5E_DEFAULT(void) { return H5E_DEFAULT; }

// Number of attributes of an open object, or -1 on failure. H5O_info_t is versioned
// between HDF5 releases (and carries time_t fields), so it stays on the C side.
static inline long long lethe_attribute_count(hid_t object) {
    H5O_info_t info;
    if (H5Oget_info2(object, &info, H5O_INFO_NUM_ATTRS) < 0) return -1;
    return (long long)info.num_attrs;
}

// HDF5 1.10 predefines no half-precision type. This builds IEEE binary16,
// little-endian (sign bit 15, exponent bits 10..14 with bias 15, mantissa 0..9),
// the layout h5py and numpy read as float16. The caller closes it with H5Tclose.
static inline hid_t lethe_make_H5T_IEEE_F16LE(void) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return t;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_precision(t, 16) < 0 ||
        H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}
