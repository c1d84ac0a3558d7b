/// "1 shard", "2 shards": a count and its noun, plural with an s when the count is not 1
/// (the nouns of Lethe's messages take a plain s).
public func counted(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }
