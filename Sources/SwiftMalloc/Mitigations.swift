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
///
/// Two of glibc's debugging settings use the same switches, so the fast
/// paths stay as they are and every call of the process takes the slow path
/// while one is on (Options, at start only):
/// - glibc.malloc.check / MALLOC_CHECK_ (checkOverflows): canaries alone,
///   as glibc's check puts a magic byte after each block;
/// - MALLOC_PERTURB_ (perturb): newly allocated bytes (not calloc's) are
///   filled with the complement of the byte, freed ones with the byte
///   (Canary.allocate and free, page runs in Malloc.swift,
///   LargeBlocks.allocate).
struct Mitigations {
  var canaries: Bool
  var quarantine: Bool
  var guardPages: Bool
  var shuffle: Bool
  var noThreadCache: Bool
  /// canaries || quarantine || perturbing, stored: free's slow path reads
  /// one byte.
  var checkedSmallBlocks: Bool
  /// MALLOC_PERTURB_'s byte; 0: off.
  var perturbByte: UInt8 = 0

  static let secure = Mitigations(canaries: true, quarantine: true, guardPages: true, shuffle: true,
                                  noThreadCache: true, checkedSmallBlocks: true)

  /// Bytes a small block carries beyond the request.
  @inline(__always) var overhead: UInt { canaries ? Canary.overhead : 0 }

  @inline(__always) var perturbs: Bool { perturbByte != 0 }

  /// MALLOC_PERTURB_: every small block through Canary's checked path.
  mutating func perturb(_ byte: UInt8) {
    perturbByte = byte
    if byte != 0 { slowPathOnly() }
  }

  /// glibc.malloc.check: canaries, without the rest of secure mode.
  mutating func checkOverflows() {
    canaries = true
    slowPathOnly()
  }

  /// MALLOC_PERTURB_: `bytes` from `p` filled with the complement of the
  /// byte when handed out, with the byte when freed; nothing when it is off.
  @inline(__always)
  static func perturb(_ p: RawPtr, _ bytes: UInt, freed: Bool) {
    let byte = Heap.state.pointee.mitigations.perturbByte
    if byte != 0 { p.initializeMemory(as: UInt8.self, repeating: freed ? byte : ~byte, count: Int(bytes)) }
  }

  private mutating func slowPathOnly() {
    noThreadCache = true
    checkedSmallBlocks = true
  }
}
