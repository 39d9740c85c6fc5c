import CShim

// See Malloc.swift for an overview; the mitigations are listed in Mitigations.swift.

/// Small blocks with a canary (Mitigations.canaries): each carries, after
/// the caller's bytes, canary bytes up to its last word and then its
/// requested size keyed with the process secret; both are checked on free,
/// realloc and malloc_usable_size. Such blocks come from the quarantine's
/// ready lists or straight from the
/// central list (no thread cache) and, when freed, go to the quarantine.
///
/// Layout of a small block of class size S holding a request of n bytes:
///
///     0            n                      C          S-8          S
///     | caller's n | 0 | canary (>= 7 B)  | unchecked | n ^ key    |
///
/// The canary runs from n to C = min(S-8, (n rounded down to 8) + `window`):
/// at most 64 bytes, whatever the slack (an 8192-byte request in a 10 KiB
/// class writes and checks 64 bytes, not 2 KiB). A linear overflow past the
/// request crosses byte n first, so it is caught however far it runs; a
/// write that lands beyond C without touching [n, C) (an indexed write
/// into the slack) is not, unless it reaches the size word.
/// hardened_malloc's canary is one 8-byte word.
///
/// The canary's first byte is zero (as hardened_malloc's): a string the
/// caller forgot to terminate stops there instead of running into the next
/// block. The price: an overflow that writes exactly one zero byte past
/// the request (an off-by-one terminator) is not caught.
/// Freed, the block reads zero in full (the quarantine zeroes it) but for
/// the trailer word, which then holds the freed tag: double frees and uses
/// after free are found there, and the caller's bytes stay zero.
enum Canary {
  /// Canary (at least 8 bytes) plus the size word.
  static let overhead: UInt = 16
  /// Bytes from the word holding byte n that the canary covers at most.
  static let window: UInt = 64

  /// Where the canary of a request of `n` bytes ends in a block whose size
  /// word starts at `end` (bytes from the block; a multiple of 8).
  @inline(__always)
  static func canaryEnd(request n: UInt, end: UInt) -> UInt { min(end, (n & ~7) &+ window) }

  @inline(__always)
  static var canaryByte: UInt8 { UInt8(truncatingIfNeeded: Heap.state.pointee.keySecret &>> 16) | 0x81 }

  @inline(__always)
  static func sizeKey(_ p: RawPtr) -> UInt {
    (Heap.state.pointee.keySecret &>> 7) ^ (UInt(bitPattern: p) &* 0xff51_afd7_ed55_8ccd)
  }

  /// A block of `sizeClass` for a request of `n` bytes, its canary and size
  /// word written; nil with ENOMEM when memory is exhausted.
  static func allocate(_ sizeClass: UInt32, request n: UInt, zeroed: Bool) -> RawPtr? {
    let mitigations = Heap.state.pointee.mitigations
    guard let block = (mitigations.quarantine ? Quarantine.takeReady(sizeClass) : nil)
            ?? fetch(sizeClass, stocking: mitigations.quarantine) else {
      swm_errno_set(swm_ENOMEM())
      return nil
    }
    let size = UInt(swm_class_to_size(sizeClass))
    block.storeBytes(of: 0, as: UInt.self)                  // fetch's chain link
    block.storeBytes(of: 0, toByteOffset: 8, as: UInt.self) // freed tag
    let fill: UInt8 = zeroed || !mitigations.perturbs ? 0 : ~mitigations.perturbByte
    if zeroed || mitigations.perturbs { block.initializeMemory(as: UInt8.self, repeating: fill, count: Int(n)) }
    if mitigations.canaries {
      writeCanary(block, request: n, end: canaryEnd(request: n, end: size &- 8), fill: fill)
      block.storeBytes(of: n ^ sizeKey(block), toByteOffset: Int(size &- 8), as: UInt.self)
    }
    return block
  }

  /// A block from the central list (nil: no memory); `stocking` (the
  /// quarantine is on), a few more for this thread's shard's ready list of
  /// the class, which was empty: one class lock for several mallocs of a
  /// program that allocates more than it frees.
  @inline(never)
  private static func fetch(_ sizeClass: UInt32, stocking: Bool) -> RawPtr? {
    let want = stocking ? Quarantine.stockCount(sizeClass) : 1
    let (head, taken) = Central.fetch(sizeClass, count: want, owner: 0)
    guard taken != 0, let block = head else { return nil }
    if taken > 1 { Quarantine.stock(block.load(as: RawPtr?.self), sizeClass: sizeClass) }
    return block
  }

  /// The canary of bytes [n, end) in its words: the word holding byte n,
  /// its bytes below n (the caller's) written as `fill`, with byte n zero,
  /// then whole words. The caller's bytes are not read back: they were just
  /// written as `fill` (calloc's zeroing, MALLOC_PERTURB_) or are not yet
  /// the caller's (malloc's bytes are unspecified), and the read of a block
  /// whose end lies on a line not yet in the cache was a stall in every
  /// allocation (a third of Canary.allocate's samples in bench's `frag`).
  /// (n + 8 <= end, end a multiple of 8; little-endian byte order in words.)
  @inline(__always)
  private static func writeCanary(_ p: RawPtr, request n: UInt, end: UInt, fill: UInt8) {
    let word = UInt(canaryByte) &* 0x0101_0101_0101_0101
    let first = n & ~7
    let shift = (n & 7) &* 8
    let keep: UInt = shift == 0 ? 0 : ~0 &>> (64 &- shift)  // the caller's bytes of the first word
    let head = UInt(fill) &* 0x0101_0101_0101_0101
    let canary = (word & ~(0xff &<< shift)) & ~keep
    p.storeBytes(of: ((head & keep) | canary).littleEndian, toByteOffset: Int(first), as: UInt.self)
    if first &+ 8 < end {
      (p + Int(first &+ 8)).initializeMemory(as: UInt8.self, repeating: canaryByte, count: Int(end &- first &- 8))  // memset
    }
  }

  /// malloc's slow path with checked small blocks: a request that takes a
  /// size class goes straight to `allocate`. nil (any other route, or no
  /// memory) leaves the request to allocateSlow, which routes it and retries.
  @inline(__always)
  static func mallocSmall(_ n: UInt) -> RawPtr? {
    guard case .sizeClass(let sizeClass) = Route.decide(size: n, overhead: Heap.state.pointee.mitigations.overhead),
          let p = allocate(sizeClass, request: n, zeroed: false) else { return nil }
    if swm_live_on() != 0 { Live.tick() }  // as allocateSlow does
    return p
  }

  /// The size the caller asked for; stops on a freed block (its trailer
  /// holds the freed tag) or an overwritten size word.
  static func requestedSize(_ p: RawPtr, sizeClass: UInt32, use: Ownership.Use, call: StaticString) -> UInt {
    let size = UInt(swm_class_to_size(sizeClass))
    let trailer = p.load(fromByteOffset: Int(size &- 8), as: UInt.self)
    if trailer == UInt(bitPattern: p) ^ Heap.state.pointee.tagSecret { Ownership.freed(p, use: use, call: call) }
    let n = trailer ^ sizeKey(p)
    if n > size &- overhead { Diagnostics.fatal(call, "heap overflow (block trailer overwritten) in", p) }
    return n
  }

  /// Checks the size word and every canary byte (those of the window);
  /// returns the requested size.
  /// The canary's words are compared whole (the first one masked to the
  /// bytes from n), their differences or-ed (a loop the compiler
  /// vectorizes), one branch at the end.
  static func check(_ p: RawPtr, sizeClass: UInt32, use: Ownership.Use = .access, call: StaticString) -> UInt {
    let size = UInt(swm_class_to_size(sizeClass))
    let n = requestedSize(p, sizeClass: sizeClass, use: use, call: call)
    let word = UInt(canaryByte) &* 0x0101_0101_0101_0101
    let end = canaryEnd(request: n, end: size &- 8)  // blocks are 16-byte multiples: end is 8-aligned
    let first = n & ~7
    let shift = (n & 7) &* 8
    let mine = ~0 &<< shift  // the canary's bytes of the first word
    let head = UInt(littleEndian: p.load(fromByteOffset: Int(first), as: UInt.self))
    var stray = (head ^ (word & ~(0xff &<< shift))) & mine
    var i = Int(first) &+ 8  // Int offsets: no conversion check in the loop, so it vectorizes
    let stop = Int(end)
    while i < stop {
      stray |= p.load(fromByteOffset: i, as: UInt.self) ^ word
      i &+= 8
    }
    if stray != 0 { Diagnostics.fatal(call, "heap overflow past the end of", p) }
    return n
  }

  /// free of a checked small block (a block start, not freed): canary
  /// checked, then to the quarantine, or straight back to the central list
  /// (filled with MALLOC_PERTURB_'s byte, and carrying the freed tag).
  static func free(_ p: RawPtr, sizeClass: UInt32, tag: UInt, call: StaticString) {
    let mitigations = Heap.state.pointee.mitigations
    if mitigations.canaries { _ = check(p, sizeClass: sizeClass, use: .release, call: call) }
    if mitigations.quarantine { return Quarantine.enter(p, sizeClass: sizeClass, tag: tag) }
    if mitigations.perturbs {
      p.initializeMemory(as: UInt8.self, repeating: mitigations.perturbByte, count: Int(swm_class_to_size(sizeClass)))
    }
    p.storeBytes(of: tag, toByteOffset: 8, as: UInt.self)
    p.storeBytes(of: nil, as: RawPtr?.self)
    Central.release(sizeClass, head: p)
  }
}
