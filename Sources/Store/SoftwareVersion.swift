/// The version of Lethe that wrote a file; recorded in every checkpoint and plan. It changes
/// whenever training's arithmetic does (a stage replays bit for bit only under the version
/// that trained it): 0.2.0 trains on packed batches, whose adapter gradients sum their rows in
/// another order than 0.1.0's padded ones.
public let letheVersion = "0.2.0"
