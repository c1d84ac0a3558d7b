/// The version of Lethe that wrote a file; recorded in every checkpoint and plan.
public let letheVersion = "0.1.0"
