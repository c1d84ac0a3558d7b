/// The version of Lethe that wrote a file; recorded in every checkpoint and plan. It changes
/// whenever training's arithmetic does (a stage replays bit for bit only under the version
/// that trained it): 0.2.0 trains on packed batches, whose adapter gradients sum their rows in
/// another order than 0.1.0's padded ones; 0.3.0 trains an encoder on N > 1 threads as N
/// groups of sequences whose gradients are added afterwards (one thread: the bits of 0.2.0);
/// 0.4.0 multiplies by bf16 frozen weights with oneDNN's brgemm kernels on AVX-512 CPUs, which
/// sum products with k = 1536 (the encoder's FFN output, the decoder's) in another order than
/// its gemm kernels did (float32, and AVX2-only CPUs: the bits of 0.3.0).
public let letheVersion = "0.4.0"
