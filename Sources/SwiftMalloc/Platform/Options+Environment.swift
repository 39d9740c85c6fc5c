import CShim

// See Malloc.swift for an overview; the table is in Options.swift.

/// The environment, read once at the first allocation (init lock held) by
/// walking `environ`: GLIBC_TUNABLES first, then glibc's MALLOC_*_
/// variables, then SWIFTMALLOC_*; each source overrides the ones before it
/// row by row, so SWIFTMALLOC_* wins over MALLOC_*_, which wins over
/// GLIBC_TUNABLES. Every value is checked as it is read (a bad one says
/// so and keeps what was in effect); then each row found is applied once,
/// in table order.
extension Options {
  /// The values found so far, row by row, and where each came from.
  struct Found {
    var values = InlineArray<16, UInt>(repeating: 0)
    var sources = InlineArray<16, UInt8>(repeating: 0)
    /// SWIFTMALLOC_STATS_FILE's text, in the environment.
    var path: UnsafePointer<CChar>? = nil
    var pathLength = 0

    func source(_ option: Option) -> Source { Source(rawValue: sources[Int(option.rawValue)]) ?? .unset }
    func value(_ option: Option) -> UInt { values[Int(option.rawValue)] }
  }

  static func loadEnvironment() {
    guard let env = swm_environ() else { return }
    var found = Found()
    collect(env, into: &found)
    apply(found)
  }

  /// Reads every source, lowest rank first, into `found` (and says what is
  /// wrong with what it reads).
  static func collect(_ env: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>, into found: inout Found) {
    var i = 0
    while let entry = env[i] {
      i &+= 1
      if let tunables = value(entry, "GLIBC_TUNABLES=") {
        readTunables(tunables, into: &found)
        break  // the first, as getenv would find
      }
    }
    readVariables(env, source: .glibcVariable, into: &found)
    readVariables(env, source: .swiftmalloc, into: &found)
  }

  /// Stores what was found (init lock held).
  static func apply(_ found: Found) {
    var raw: UInt8 = 0
    while let option = Option(rawValue: raw) {
      raw &+= 1
      let source = found.source(option)
      if source == .unset { continue }
      if option == .statsFile {
        // the environment must not choose a file a set-user-ID program writes
        if swm_secure_execution() != 0 { statsFileRefused(); continue }
        setStatsFile(found.path!, length: found.pathLength)
      } else {
        option.apply(found.value(option))
      }
      Heap.state.pointee.options.sources[Int(option.rawValue)] = source.rawValue
      if option == .arenaMax { arenaMaxAccepted(found.value(option), source: source) }
    }
  }

  /// A value read for `option` from `source`: kept in `found` when good,
  /// else reported (keeping what an earlier source or the default gave).
  static func take(_ option: Option, _ text: UnsafePointer<CChar>, length: Int, source: Source,
                   prefix: StaticString, name: StaticString, into found: inout Found) {
    let row = Int(option.rawValue)
    let parsed = parse(option, text, length: length)
    guard case .value(let v) = parsed else {
      let keeping = found.sources[row] != 0 ? found.values[row] : option.current
      return badValue(option, prefix: prefix, name: name, text, length: length, parsed, keeping: keeping)
    }
    found.values[row] = v
    found.sources[row] = source.rawValue
    if option == .statsFile { (found.path, found.pathLength) = (text, length) }
  }

  /// Every SWIFTMALLOC_* (or MALLOC_*) variable: a row's, else reported
  /// (an unknown SWIFTMALLOC_ name with the nearest known one; glibc's
  /// MALLOC_ARENA_TEST as ignored; other MALLOC_ names are not ours).
  private static func readVariables(_ env: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>, source: Source,
                                    into found: inout Found) {
    var i = 0
    while let entry = env[i] {
      i &+= 1
      if value(entry, source == .swiftmalloc ? "SWIFTMALLOC_" : "MALLOC_") == nil { continue }
      var matched = false
      var raw: UInt8 = 0
      while let option = Option(rawValue: raw) {
        raw &+= 1
        guard let name = source == .swiftmalloc ? option.environmentName : option.glibcName,
              let text = value(entry, name) else { continue }
        take(option, text, length: length(text), source: source, prefix: "", name: name, into: &found)
        matched = true
        break
      }
      if matched { continue }
      if source == .swiftmalloc { unknownVariable(entry) }
      else if value(entry, "MALLOC_ARENA_TEST=") != nil { ignoredVariable(entry) }
    }
  }

  /// GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1M:glibc.malloc.perturb=165:...
  /// glibc.malloc.* names without a row are listed on one line as ignored;
  /// other namespaces (glibc.pthread.*, ...) are not malloc's.
  private static func readTunables(_ text: UnsafePointer<CChar>, into found: inout Found) {
    var ignored = MessageLine()
    ignored.text("GLIBC_TUNABLES: ignoring")
    var ignoredCount = 0
    var p = text
    while p.pointee != 0 {
      var end = p
      while end.pointee != 0 && end.pointee != 58 { end += 1 }  // ':'
      if let name = value(p, "glibc.malloc."), name <= end, !readTunable(name, end: end, into: &found) {
        var nameEnd = name
        while nameEnd < end && nameEnd.pointee != 61 { nameEnd += 1 }  // '='
        ignored.text(ignoredCount == 0 ? " glibc.malloc." : ", glibc.malloc.")
        ignored.bytes(name, nameEnd - name)
        ignoredCount &+= 1
      }
      p = end.pointee == 0 ? end : end + 1
    }
    if ignoredCount > 0 {
      ignored.text(" (no swiftmalloc equivalent)")
      ignored.write()
    }
  }

  /// One glibc.malloc.NAME=VALUE (NAME at `name`, the item ending at
  /// `end`); false when no row has that name.
  private static func readTunable(_ name: UnsafePointer<CChar>, end: UnsafePointer<CChar>,
                                  into found: inout Found) -> Bool {
    var raw: UInt8 = 0
    while let option = Option(rawValue: raw) {
      raw &+= 1
      guard let tunable = option.tunableName, let text = value(name, tunable), text <= end else { continue }
      take(option, text, length: end - text, source: .tunables, prefix: "GLIBC_TUNABLES: glibc.malloc.",
           name: tunable, into: &found)
      return true
    }
    return false
  }
}
