import CShim

// See Malloc.swift for an overview; the table is in Options.swift.

/// Reading values and names: no allocation, no libc (it runs inside the
/// first malloc). Texts come as a pointer and a length, since a
/// GLIBC_TUNABLES value ends at ':' rather than at a NUL.
extension Options {
  /// What became of a value.
  enum Parsed {
    case value(UInt)
    /// Not of the row's kind at all.
    case malformed
    /// Of the right kind, beyond the row's maximum.
    case outOfRange
  }

  /// A value for `option`, checked against its kind and range.
  static func parse(_ option: Option, _ text: UnsafePointer<CChar>, length: Int) -> Parsed {
    let v: UInt?
    switch option.kind {
    case .size: v = parseSize(text, length: length, suffixes: true)
    case .number: v = parseSize(text, length: length, suffixes: false)
    case .boolean: v = parseBoolean(text, length: length)
    case .report: v = parseBoolean(text, length: length) ?? parseWord(text, length, "text", 1) ?? parseWord(text, length, "json", 2)
    case .path: return length == 0 || length > maxPath ? .outOfRange : .value(UInt(length))
    }
    if let v { return v <= option.maximum ? .value(v) : .outOfRange }
    guard option.kind == .size || option.kind == .number else { return .malformed }
    // "-1" where it means something; any other negative number, or one
    // beyond 64 bits, is a number out of range
    let negative = length > 1 && text[0] == 45
    if negative, let n = option.negativeMeans, length == 2, text[1] == 49 { return .value(n) }
    let digits = negative ? text + 1 : text
    let big = parseSize(digits, length: negative ? length &- 1 : length, suffixes: option.kind == .size,
                        overflowIsValue: true)
    return big != nil ? .outOfRange : .malformed
  }

  /// "123", "64K", "1M", "2GiB", "16kb", "0x1000": bytes, or nil for
  /// anything else (empty, other characters, overflow). NUL-terminated.
  static func parseSize(_ text: UnsafePointer<CChar>) -> UInt? {
    parseSize(text, length: length(text), suffixes: true)
  }

  static func length(_ text: UnsafePointer<CChar>) -> Int {
    var n = 0
    while text[n] != 0 { n &+= 1 }
    return n
  }

  /// Decimal (or 0x hex) digits, then with `suffixes` K, M or G (powers of
  /// 1024, optionally followed by i and b). `overflowIsValue`: a number too
  /// large for 64 bits still counts as one (for the message).
  static func parseSize(_ text: UnsafePointer<CChar>, length: Int, suffixes: Bool,
                        overflowIsValue: Bool = false) -> UInt? {
    var i = 0
    var n: UInt = 0
    var overflow = false
    let hex = length > 2 && text[0] == 48 && text[1] | 0x20 == 120  // 0x
    if hex { i = 2 }
    let first = i
    while i < length, let d = digit(text[i], hex: hex) {
      let (m, o1) = n.multipliedReportingOverflow(by: hex ? 16 : 10)
      let (s, o2) = m.addingReportingOverflow(d)
      overflow = overflow || o1 || o2
      n = s
      i &+= 1
    }
    if i == first { return nil }
    var shift: UInt = 0
    if suffixes && !hex && i < length {
      switch text[i] | 0x20 {  // lower case
      case 107: shift = 10  // k
      case 109: shift = 20  // m
      case 103: shift = 30  // g
      default: return nil
      }
      i &+= 1
      if i < length && text[i] | 0x20 == 105 { i &+= 1 }  // i
      if i < length && text[i] | 0x20 == 98 { i &+= 1 }   // b
    }
    if i != length { return nil }
    if shift != 0 && n > (UInt.max &>> shift) { overflow = true }
    if overflow { return overflowIsValue ? UInt.max : nil }
    return n &<< shift
  }

  private static func digit(_ c: CChar, hex: Bool) -> UInt? {
    if c >= 48 && c <= 57 { return UInt(c &- 48) }
    let lower = c | 0x20
    if hex && lower >= 97 && lower <= 102 { return UInt(lower &- 87) }
    return nil
  }

  /// 1/0, true/false, yes/no, on/off (any case): 1 or 0.
  static func parseBoolean(_ text: UnsafePointer<CChar>, length: Int) -> UInt? {
    if length == 1 && (text[0] == 48 || text[0] == 49) { return UInt(text[0] &- 48) }
    return parseWord(text, length, "true", 1) ?? parseWord(text, length, "yes", 1) ?? parseWord(text, length, "on", 1)
      ?? parseWord(text, length, "false", 0) ?? parseWord(text, length, "no", 0) ?? parseWord(text, length, "off", 0)
  }

  /// `value` when the text is `word` in any case.
  private static func parseWord(_ text: UnsafePointer<CChar>, _ length: Int, _ word: StaticString, _ value: UInt) -> UInt? {
    if length != word.utf8CodeUnitCount { return nil }
    var i = 0
    while i < length {
      if UInt8(bitPattern: text[i]) | 0x20 != word.utf8Start[i] { return nil }
      i &+= 1
    }
    return value
  }

  /// The text after `name` (which ends in "=") if `entry` starts with it.
  static func value(_ entry: UnsafePointer<CChar>, _ name: StaticString) -> UnsafePointer<CChar>? {
    let n = name.utf8Start
    var k = 0
    while k < name.utf8CodeUnitCount {
      if UInt8(bitPattern: entry[k]) != n[k] { return nil }
      k &+= 1
    }
    return entry + k
  }

  /// The row whose SWIFTMALLOC_ name is nearest to `name` (`length` bytes,
  /// no "="), by edit distance to the whole name or, one more, to its start;
  /// ties go to the earlier row.
  static func closestName(to name: UnsafePointer<CChar>, length: Int) -> Option {
    var best = Option.mmapThreshold
    var bestDistance = Int.max
    var raw: UInt8 = 0
    while let option = Option(rawValue: raw) {
      raw &+= 1
      guard let known = option.environmentName else { continue }
      // a name cut short counts as the row it starts ("SWIFTMALLOC_TRIM")
      let knownLength = known.utf8CodeUnitCount &- 1
      let whole = editDistance(name, length, known.utf8Start, knownLength)
      let start = length < knownLength ? editDistance(name, length, known.utf8Start, length) &+ 1 : whole
      let d = min(whole, start)
      if d < bestDistance { (best, bestDistance) = (option, d) }
    }
    return best
  }

  /// Levenshtein distance (insertions, deletions, substitutions; letters
  /// compared without case), over the first 47 bytes of each.
  static func editDistance(_ a: UnsafePointer<CChar>, _ aLength: Int, _ b: UnsafePointer<UInt8>, _ bLength: Int) -> Int {
    let n = min(aLength, 47), m = min(bLength, 47)
    var previous = InlineArray<48, Int>(repeating: 0)
    var row = InlineArray<48, Int>(repeating: 0)
    var j = 0
    while j <= m { previous[j] = j; j &+= 1 }
    var i = 1
    while i <= n {
      row[0] = i
      j = 1
      while j <= m {
        let same = UInt8(bitPattern: a[i &- 1]) | 0x20 == b[j &- 1] | 0x20
        row[j] = min(previous[j] &+ 1, row[j &- 1] &+ 1, previous[j &- 1] &+ (same ? 0 : 1))
        j &+= 1
      }
      swap(&previous, &row)
      i &+= 1
    }
    return previous[m]
  }
}
