/// A hash table keyed by a pair of integer ids, with a counter per key: the rollup keys and
/// distinct users of one SQLite load. The loader touches it several times per event,
/// and Swift's `Set`/`Dictionary` spend most of that in SipHash; a multiply-shift hash over
/// two words with linear probing costs a fraction of it. Keys must not be `UInt64.max` in
/// `a` (the empty-slot marker); ids from SQLite rowids never are.
struct IDPairTable {
    private struct Slot {
        var a: UInt64
        var b: UInt64
        var value: Int64
    }

    private static let empty = UInt64.max
    private var slots: [Slot]
    private var shift: UInt64
    /// Per table, so that copying one table into another in slot order (which is hash order)
    /// does not pile keys into one probe run.
    private let salt = UInt64.random(in: 0...UInt64.max) | 1
    private(set) var count = 0

    init(capacity: Int = 64) {
        var bits: UInt64 = 4
        while (1 << bits) < capacity * 2 { bits += 1 }
        slots = Array(repeating: Slot(a: Self.empty, b: 0, value: 0), count: 1 << bits)
        shift = 64 - bits
    }

    /// Packs a site id and a day into the first key word.
    @inline(__always)
    static func word(_ site: Int64, _ day: Int32) -> UInt64 {
        UInt64(truncatingIfNeeded: site) << 32 | UInt64(UInt32(bitPattern: day))
    }

    @inline(__always)
    private func home(_ a: UInt64, _ b: UInt64) -> Int {
        let h = ((a &* salt) ^ (b &* 0x9E37_79B9_7F4A_7C15)) &* 0xBF58_476D_1CE4_E5B9
        return Int(truncatingIfNeeded: (h ^ (h >> 31)) >> shift)
    }

    /// Index of the key's slot, or of the empty slot where it would go.
    @inline(__always)
    private func find(_ a: UInt64, _ b: UInt64) -> Int {
        let mask = slots.count - 1
        var i = home(a, b)
        return slots.withUnsafeBufferPointer { s in
            while true {
                let slot = s[i]
                if slot.a == Self.empty || (slot.a == a && slot.b == b) { return i }
                i = (i + 1) & mask
            }
        }
    }

    func contains(_ a: UInt64, _ b: UInt64) -> Bool {
        slots[find(a, b)].a != Self.empty
    }

    /// Adds `delta` to the key's counter (a new key starts at 0). Returns true if the key is new.
    @discardableResult
    mutating func add(_ a: UInt64, _ b: UInt64, _ delta: Int64 = 1) -> Bool {
        var i = find(a, b)
        if slots[i].a != Self.empty {
            slots[i].value += delta
            return false
        }
        if (count + 1) * 10 > slots.count * 7 {
            grow()
            i = find(a, b)
        }
        slots[i] = Slot(a: a, b: b, value: delta)
        count += 1
        return true
    }

    /// The key's counter, or nil when the key is not there.
    func value(_ a: UInt64, _ b: UInt64) -> Int64? {
        let s = slots[find(a, b)]
        return s.a == Self.empty ? nil : s.value
    }

    mutating func removeAll() {
        guard count > 0 else { return }
        for i in slots.indices { slots[i].a = Self.empty }
        count = 0
    }

    /// Every key with its counter, in ascending (a, b) order.
    func sorted() -> [(a: UInt64, b: UInt64, value: Int64)] {
        var out: [(a: UInt64, b: UInt64, value: Int64)] = []
        out.reserveCapacity(count)
        for s in slots where s.a != Self.empty { out.append((s.a, s.b, s.value)) }
        out.sort { ($0.a, $0.b) < ($1.a, $1.b) }
        return out
    }

    /// Every key in ascending (a, b) order, counters left out, for keys whose words both fit
    /// in 32 bits: a sort of single words, several times faster than of pairs.
    func sortedPairs() -> [(a: UInt64, b: UInt64)] {
        var packed: [UInt64] = []
        packed.reserveCapacity(count)
        var fits = true
        for s in slots where s.a != Self.empty {
            fits = fits && s.a <= UInt64(UInt32.max) && s.b <= UInt64(UInt32.max)
            packed.append(s.a << 32 | (s.b & 0xFFFF_FFFF))
        }
        guard fits else { return sorted().map { ($0.a, $0.b) } }
        packed.sort()
        return packed.map { ($0 >> 32, $0 & 0xFFFF_FFFF) }
    }

    func forEach(_ body: (UInt64, UInt64, Int64) -> Void) {
        for s in slots where s.a != Self.empty { body(s.a, s.b, s.value) }
    }

    private mutating func grow() {
        let old = slots
        let bits = 64 - shift + 1
        slots = Array(repeating: Slot(a: Self.empty, b: 0, value: 0), count: 1 << bits)
        shift = 64 - bits
        for s in old where s.a != Self.empty {
            slots[find(s.a, s.b)] = s
        }
    }
}
