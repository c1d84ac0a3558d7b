extension Array where Element == Double {
    /// The middle value once sorted (the upper of the two middle values for an even count), or
    /// 0 for no values: what every benchmark reports as its median.
    var median: Double {
        isEmpty ? 0 : sorted()[count / 2]
    }
}
