import CShim

/// Heap misuse ends here: one line on stderr (write(2)) naming the call, the
/// problem and the pointer, then abort().
enum Diagnostics {
  @inline(__always)
  static func cString(_ s: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
  }

  @inline(never)
  static func fatal(_ call: StaticString, _ problem: StaticString, _ p: UnsafeRawPointer?) -> Never {
    swm_fatal(cString(call), cString(problem), p)
  }

  /// Damage found in `p` during `call`, later than it was done.
  @inline(never)
  static func damageFound(_ problem: StaticString, _ p: UnsafeRawPointer?, during call: StaticString) -> Never {
    swm_fatal_found(cString(problem), p, cString(call))
  }

  @inline(never)
  static func invalidPointer(_ call: StaticString, _ p: UnsafeRawPointer?) -> Never {
    fatal(call, "invalid pointer", p)
  }

  @inline(never)
  static func doubleFree(_ call: StaticString, _ p: UnsafeRawPointer?) -> Never {
    fatal(call, "double free of", p)
  }

  /// "swiftmalloc: ignoring bad NAME=value" (name ends in "=").
  static func badOption(_ name: StaticString, _ value: UnsafePointer<CChar>) {
    swm_warn(cString("ignoring bad "), cString(name), value)
  }
}
