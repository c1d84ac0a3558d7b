import CommandSupport
import Foundation

/// Environment variables that choose which kernels OpenBLAS and oneDNN run, and with them the
/// bits of every product: a stage trained with `OPENBLAS_CORETYPE=Haswell` (AVX2 kernels) differs
/// in nearly every value from one trained on the kernels OpenBLAS picks for the CPU, so `verify
/// --replay` would call a genuine run tampered, and the same seed would not give the same files.
///
/// `lethe` removes them from its environment before any product runs, so its arithmetic depends
/// on the CPU alone. OpenBLAS reads its variables when the library loads, before `main`, so when
/// one of those is set the process starts itself again (same process id, arguments and everything
/// else) without it; oneDNN reads its own at the first product, so removing them is enough.
enum KernelEnvironment {
    /// Read by OpenBLAS when it loads: its kernel family and its blocking.
    static let readAtLoad = ["OPENBLAS_CORETYPE", "OPENBLAS_BLOCK_FACTOR"]
    /// Read by oneDNN at its first primitive: the instruction set it may use and whether float32
    /// products may run in a lower precision.
    static let readAtFirstUse = ["DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "DNNL_CPU_ISA_HINTS", "ONEDNN_CPU_ISA_HINTS",
                                 "DNNL_DEFAULT_FPMATH_MODE", "ONEDNN_DEFAULT_FPMATH_MODE"]

    /// Removes the variables; starts the process again when OpenBLAS has already read one. Call
    /// first thing in `main`, before any thread of ours starts.
    static func useTheCPUsOwnKernels() {
        for name in readAtFirstUse where getenv(name) != nil { unsetenv(name) }
        let loaded = readAtLoad.filter { getenv($0) != nil }
        guard !loaded.isEmpty else { return }
        for name in loaded { unsetenv(name) }
        // Started through the dynamic loader (`ld-linux-x86-64.so.2 lethe …`), /proc/self/exe is
        // the loader: it is given the program again, as it was the first time.
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let throughLoader = executable.lastPathComponent.hasPrefix("ld-linux") || executable.lastPathComponent.hasPrefix("ld.so")
        let arguments = (throughLoader ? [executable.path] : []) + CommandLine.arguments
        var pointers = arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &pointers)
        // Only reached when the exec failed (no /proc): go on, but say that the bits will differ.
        let reason = String(cString: strerror(errno))
        for pointer in pointers { free(pointer) }
        StandardError.write(Data(("warning: OpenBLAS was loaded with \(loaded.joined(separator: " and ")) set, "
            + "and lethe could not start again without it (exec of /proc/self/exe: \(reason)); its products run on the "
            + "kernels that variable chose, so checkpoints and replays may differ from runs without it. Unset it and run "
            + "the command again.\n").utf8))
    }
}
