import CShim

// See Malloc.swift for an overview.

/// The page map keeps two things per page, in two arrays of each leaf: the
/// span the page belongs to, and for a page of a small span, SmallFacts:
/// what free() needs to know about the block, so that the free fast path
/// reads one 8-byte word (eight pages to a cache line) and never the Span
/// struct (a second, dependent cache line, one per span; docs/design.md has
/// the measurements behind this layout).
///
/// Invariants: a page's facts agree with its span's sizeClass, start and
/// owner at every moment the span is small: they are written when the span
/// becomes small (Central.newSpan), when its owner changes (Central.fetch,
/// under the class lock), and cleared when it leaves the class
/// (PageHeap.release) and by every PageMap.set. A reader without the lock
/// may see the previous owner: that only decides which list a freed block
/// goes to, never correctness.
/// A small span's facts for one of its pages, in one word:
///   bits 4..11   the size class (never 0, so the word is 0 only when empty),
///                kept times 16: free indexes the bins and the block-start
///                table (16-byte entries both) with it as it is, with no
///                shift (52 -> 49 instructions on free's fast path),
///   bits 12..31  the byte offset of this page from the span's start,
///   bits 32..63  the span's owner (Span.owner, a ThreadCache.id, or 0).
struct SmallFacts {
  var bits: UInt

  static let none = SmallFacts(bits: 0)

  @inline(__always)
  init(bits: UInt) { self.bits = bits }

  @inline(__always)
  init(sizeClass: UInt32, pageOffset: UInt, owner: UInt32) {
    bits = UInt(sizeClass) &<< 4 | pageOffset | (UInt(owner) &<< 32)
  }

  @inline(__always) var isSmall: Bool { bits != 0 }
  @inline(__always) var sizeClass: UInt32 { UInt32(truncatingIfNeeded: (bits & 0xff0) &>> 4) }
  /// The size class times 16: the byte offset of its bin in a thread cache
  /// and of its entry in the block-start table.
  @inline(__always) var classTimes16: Int { Int(bitPattern: bits & 0xff0) }
  @inline(__always) var pageOffset: UInt { bits & 0xffff_f000 }

  /// The offset from the span's start of `address`, an address in this page.
  @inline(__always)
  func spanOffset(of address: UInt) -> UInt { (address & OSMemory.pageMask) | pageOffset }
  @inline(__always) var owner: UInt32 { UInt32(truncatingIfNeeded: bits &>> 32) }
}

/// Page number -> (Span, SmallFacts), as a two-level radix tree over 47-bit
/// addresses: the root (swm_pagemap_root, 2^17 slots of BSS) holds leaves of
/// 2^18 pages (4 MiB each: 2 MiB of span pointers, then 2 MiB of facts;
/// mmapped on first use, resident only where written).
/// Readers take no lock; a slot is written only by the owner of the page.
enum PageMap {
  static let leafBits: UInt = 18
  static let leafPages = 1 << leafBits
  static let rootSlots: UInt = 1 << 17

  /// The leaf holding `address` and the page's index in it; nil for an
  /// address no span ever covered (no leaf).
  @inline(__always)
  static func slot(_ address: UInt) -> (leaf: RawPtr, index: Int)? {
    let page = address &>> OSMemory.pageShift
    let rootIndex = page &>> leafBits
    if rootIndex >= rootSlots { return nil }
    guard let leaf = swm_pagemap_leaf(rootIndex) else { return nil }
    return (leaf, Int(page & UInt(leafPages - 1)))
  }

  @inline(__always)
  static func spans(_ leaf: RawPtr) -> UnsafeMutablePointer<SpanPtr?> {
    leaf.assumingMemoryBound(to: SpanPtr?.self)
  }

  @inline(__always)
  static func facts(_ leaf: RawPtr) -> UnsafeMutablePointer<SmallFacts> {
    (leaf + leafPages * MemoryLayout<SpanPtr?>.stride).assumingMemoryBound(to: SmallFacts.self)
  }

  /// The small-block facts of the page holding `address` (empty when it is
  /// not in a small span); nil when no leaf covers it.
  @inline(__always)
  static func smallFacts(_ address: UInt) -> SmallFacts? {
    guard let (leaf, index) = slot(address) else { return nil }
    return facts(leaf)[index]
  }

  @inline(__always)
  static func lookup(_ address: UInt) -> SpanPtr? {
    guard let (leaf, index) = slot(address) else { return nil }
    return spans(leaf)[index]
  }

  /// Sends `pages` pages from `address` to `span` (nil clears), with no
  /// small-block facts. False when a leaf could not be mapped.
  static func set(_ address: UInt, pages: UInt, to span: SpanPtr?) -> Bool {
    var page = address &>> OSMemory.pageShift
    let last = page &+ pages
    while page < last {
      guard let leaf = leaf(for: page &>> leafBits, create: span != nil) else {
        if span == nil { page = ((page &>> leafBits) &+ 1) &<< leafBits; continue }
        return false
      }
      let leafEnd = min(last, ((page &>> leafBits) &+ 1) &<< leafBits)
      let (spanSlots, factSlots) = (spans(leaf), facts(leaf))
      while page < leafEnd {
        let index = Int(page & UInt(leafPages - 1))
        spanSlots[index] = span
        factSlots[index] = .none
        page &+= 1
      }
    }
    return true
  }

  /// Sends the first and the last page of `span` to it (its leaves exist).
  static func setEdges(_ span: SpanPtr) {
    setPage(span.pointee.start, to: span)
    setPage(span.pointee.end &- OSMemory.pageSize, to: span)
  }

  /// Sends the page holding `address` to `span` (its leaf exists).
  static func setPage(_ address: UInt, to span: SpanPtr) {
    let (leaf, index) = slot(address)!
    spans(leaf)[index] = span
    facts(leaf)[index] = .none
  }

  /// Writes the small-block facts of every page of `span` (kind small, its
  /// pages already sent to it), or clears them (`clear`).
  static func setSmall(_ span: SpanPtr, clear: Bool = false) {
    let sizeClass = UInt32(span.pointee.sizeClass)
    let owner = span.pointee.owner
    var offset: UInt = 0
    while offset < span.pointee.bytes {
      let (leaf, index) = slot(span.pointee.start &+ offset)!
      facts(leaf)[index] = clear ? .none : SmallFacts(sizeClass: sizeClass, pageOffset: offset, owner: owner)
      offset &+= OSMemory.pageSize
    }
  }

  static let leafBytes = UInt(leafPages * (MemoryLayout<SpanPtr?>.stride + MemoryLayout<SmallFacts>.stride))

  /// Bytes of the leaves resident in memory (mincore), for the statistics:
  /// a leaf is 4 MiB of address space, resident only where written.
  static func residentBytes() -> UInt {
    var total: UInt = 0
    var rootIndex: UInt = 0
    while rootIndex < rootSlots {
      if let leaf = swm_pagemap_leaf(rootIndex) { total &+= UInt(swm_resident_bytes(leaf, Int(leafBytes))) }
      rootIndex &+= 1
    }
    return total
  }

  private static func leaf(for rootIndex: UInt, create: Bool) -> RawPtr? {
    if rootIndex >= rootSlots { return nil }
    if let leaf = swm_pagemap_leaf(rootIndex) { return leaf }
    if !create { return nil }
    return createLeaf(rootIndex)
  }

  @inline(never)
  private static func createLeaf(_ rootIndex: UInt) -> RawPtr? {
    let lock = swm_lock_at(swm_lock_index_pagemap())
    swm_lock(lock)
    defer { swm_unlock(lock) }
    if let leaf = swm_pagemap_leaf(rootIndex) { return leaf }
    let bytes = leafBytes
    guard let memory = swm_sys_mmap(Int(bytes)) else { return nil }
    swm_pagemap_set_leaf(rootIndex, memory)
    Meta.accountMapped(bytes)
    return memory
  }
}
