import CShim

// See Malloc.swift for an overview; the table is in Options.swift.

/// One line on standard error, built in place and written with one
/// write(2) (swm_line_t: no allocation, no stdio), starting "swiftmalloc: ".
struct MessageLine {
  var line = swm_line_t()

  init() { text("swiftmalloc: ") }

  mutating func text(_ s: StaticString) { swm_line_bytes(&line, Diagnostics.cString(s), s.utf8CodeUnitCount) }
  /// A variable's name without its "=".
  mutating func name(_ s: StaticString) { swm_line_bytes(&line, Diagnostics.cString(s), s.utf8CodeUnitCount &- 1) }
  mutating func bytes(_ p: UnsafePointer<CChar>, _ n: Int) { swm_line_bytes(&line, p, n) }
  mutating func number(_ v: UInt) { swm_line_num(&line, UInt64(v), 10, 0) }

  /// 128K, 32M, 1G, 1000, or -1 for "never" (UInt.max).
  mutating func size(_ v: UInt) {
    if v == UInt.max { return text("-1") }
    var (n, unit): (UInt, StaticString) = (v, "")
    if v != 0 && v & ((1 << 30) &- 1) == 0 { (n, unit) = (v &>> 30, "G") }
    else if v != 0 && v & ((1 << 20) &- 1) == 0 { (n, unit) = (v &>> 20, "M") }
    else if v != 0 && v & ((1 << 10) &- 1) == 0 { (n, unit) = (v &>> 10, "K") }
    number(n)
    text(unit)
  }

  /// A row's value as it would be written in the environment.
  mutating func value(_ option: Options.Option, _ v: UInt) {
    switch option.kind {
    case .size: size(v)
    case .number, .boolean: number(v)
    case .report: text(v == 2 ? "json" : v == 1 ? "text" : "0")
    case .path:
      let n = Options.statsFileLength
      if n != 0 { bytes(UnsafeRawPointer(Options.statsFile).assumingMemoryBound(to: CChar.self), n) }
    }
  }

  /// What a row accepts: "0..32M", "0..255", "any size, or -1 for never".
  mutating func range(_ option: Options.Option) {
    if option.maximum == UInt.max { return text("any size, or -1 for never") }
    text("0..")
    if option.kind == .size { size(option.maximum) } else { number(option.maximum) }
    if option.negativeMeans != nil { text(", or -1 for never") }
  }

  mutating func write() { swm_line_write(&line, 2) }
}

extension Options {
  /// "swiftmalloc: NAME=VALUE: what is wrong (what is accepted); keeping X".
  /// `prefix` comes before the name ("GLIBC_TUNABLES: glibc.malloc.").
  static func badValue(_ option: Option, prefix: StaticString, name: StaticString, _ text: UnsafePointer<CChar>,
                       length: Int, _ parsed: Parsed, keeping: UInt) {
    var m = MessageLine()
    m.text(prefix)
    m.text(name)
    m.bytes(text, length)
    m.text(": ")
    switch (option.kind, parsed) {
    case (.path, _): m.text("not a file name (1 to 255 bytes)")
    case (_, .outOfRange): m.text("out of range ("); m.range(option); m.text(")")
    case (.size, _): m.text("not a size (use bytes or K/M/G, "); m.range(option); m.text(")")
    case (.number, _): m.text("not a number ("); m.range(option); m.text(")")
    case (.boolean, _): m.text("not a boolean (use 1/0, true/false, yes/no, on/off)")
    case (.report, _): m.text("not a report format (use 0, 1 or text, json)")
    }
    m.text("; keeping ")
    if option.kind == .path && keeping == 0 { m.text("standard error") } else { m.value(option, keeping) }
    m.write()
  }

  /// "swiftmalloc: SWIFTMALLOC_X is not a swiftmalloc variable (did you mean
  /// SWIFTMALLOC_Y?); ignored".
  static func unknownVariable(_ entry: UnsafePointer<CChar>) {
    var n = 0
    while entry[n] != 0 && entry[n] != 61 { n &+= 1 }  // up to "="
    var m = MessageLine()
    m.bytes(entry, n)
    m.text(" is not a swiftmalloc variable (did you mean ")
    m.name(closestName(to: entry, length: n).environmentName!)
    m.text("?); ignored")
    m.write()
  }

  /// "swiftmalloc: MALLOC_ARENA_TEST=8: no swiftmalloc equivalent; ignored".
  static func ignoredVariable(_ entry: UnsafePointer<CChar>) {
    var m = MessageLine()
    m.bytes(entry, length(entry))
    m.text(": no swiftmalloc equivalent; ignored")
    m.write()
  }

  /// What MALLOC_ARENA_MAX (or glibc.malloc.arena_max) maps to.
  static func arenaMaxAccepted(_ value: UInt, source: Source) {
    var m = MessageLine()
    if source == .tunables { m.text("GLIBC_TUNABLES: glibc.malloc.arena_max=") } else { m.text("MALLOC_ARENA_MAX=") }
    m.number(value)
    m.text(": accepted; swiftmalloc has no arenas (one heap for all threads), and what each thread keeps is")
    m.text(" bounded by SWIFTMALLOC_CACHE_BUDGET (")
    m.size(Heap.state.pointee.caches.budget)
    m.text(")")
    m.write()
  }

  static func statsFileRefused() {
    var m = MessageLine()
    m.text("SWIFTMALLOC_STATS_FILE ignored in a set-user-ID or set-group-ID program")
    m.write()
  }

  /// SWIFTMALLOC_VERBOSE: the version, then every row as it is now and
  /// where its value came from (init lock held, at start).
  static func printInEffect() {
    var head = MessageLine()
    head.text("version ")
    head.bytes(swm_version_text(), length(swm_version_text()))
    head.text(", pid ")
    head.number(UInt(swm_sys_getpid()))
    head.text("; options in effect:")
    head.write()
    var raw: UInt8 = 0
    while let option = Option(rawValue: raw) {
      raw &+= 1
      var m = MessageLine()
      m.text("  ")
      m.text(option.displayName)
      m.value(option, option.current)
      switch Source(rawValue: Heap.state.pointee.options.sources[Int(option.rawValue)]) ?? .unset {
      case .unset where option == .statsFile: m.text(" (default: standard error)")
      case .unset: m.text(option == .secure && swm_secure_built_in() != 0 ? " (secure library)" : " (default)")
      case .tunables: m.text(" (from GLIBC_TUNABLES)")
      case .glibcVariable: m.text(" (from "); m.name(option.glibcName!); m.text(")")
      case .swiftmalloc: m.text(" (set)")
      case .mallopt: m.text(" (mallopt)")
      }
      m.write()
    }
  }
}
