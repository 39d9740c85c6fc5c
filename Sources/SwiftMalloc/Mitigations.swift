import CShim

// See Malloc.swift for an overview.

/// Secure mode, as the mitigations it is made of. Each is switched here and
/// tested where it acts; SWIFTMALLOC_SECURE=1 (or libswiftmalloc-secure.so)
/// turns on the `secure` set. Written once, by Options at the first
/// allocation; read-only afterwards.
///
/// | mitigation    | where it acts                 | what it catches                        |
/// |---------------|-------------------------------|----------------------------------------|
/// | canaries      | Canary.swift (small blocks)   | an overflow of 1 byte past the request |
/// | quarantine    | Quarantine.swift              | reads after free (zeroed), writes after free (checked on release) |
/// | guardPages    | PageHeap, LargeBlocks         | overflows into the next span or mapping (SIGSEGV) |
/// | shuffle       | CentralFreeList (new spans)   | predictable heap layouts               |
/// | noThreadCache | Route, ThreadCache            | makes every call take the checked slow path |
///
/// canaries and quarantine work on the slow path only, so they need
/// noThreadCache. Encoded span free-list links are not optional: they are on
/// in every mode (CentralFreeList).
struct Mitigations {
  var canaries: Bool
  var quarantine: Bool
  var guardPages: Bool
  var shuffle: Bool
  var noThreadCache: Bool
  /// canaries || quarantine, stored: free's slow path reads one byte.
  var checkedSmallBlocks: Bool

  static let secure = Mitigations(canaries: true, quarantine: true, guardPages: true, shuffle: true,
                                  noThreadCache: true, checkedSmallBlocks: true)

  /// Bytes a small block carries beyond the request.
  @inline(__always) var overhead: UInt { canaries ? Canary.overhead : 0 }
}
