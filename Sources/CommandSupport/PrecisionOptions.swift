import ArgumentParser
import Kernels

extension Precision: ExpressibleByArgument {}

/// `--precision` for commands that only run a trained run (predict, evaluate, serve): the
/// arithmetic of the frozen products, the run's own unless given. Nothing is written, so
/// answering a float32 run in bf16 (or the reverse) mixes nothing.
public struct InferencePrecisionOptions: ParsableArguments {
    public init() {}

    @Option(help: "Arithmetic of the frozen base weights' products: fp32, or bf16 (weights rounded to bfloat16 once, float32 accumulation; fast on CPUs with AVX512-BF16). Default: the run's precision.")
    public var precision: Precision?
}
