import CShim

/// One page's slot in the page map: the span the page belongs to and, for a
/// page of a small span, what free() needs to know about the block, so that
/// the free fast path reads this one 16-byte slot and never the Span struct
/// (a second, dependent cache line, one per span: the stall that made free
/// three times the cost of malloc under many threads).
///
/// `small` is empty unless the page belongs to a span of kind `small`.
/// Invariants: `small` agrees with the span's sizeClass, start and owner at
/// every moment the span is small: it is written when the span becomes small
/// (Central.newSpan), when its owner changes (Central.fetch, under the class
/// lock), and cleared when it leaves the class (PageHeap.release) and by
/// every PageMap.set. A reader without the lock may see the previous owner:
/// that only decides which list a freed block goes to, never correctness.
struct PageEntry {
  var span: SpanPtr?
  var small: SmallFacts
}

/// A small span's facts for one of its pages, in one word:
///   bits 0..7    the size class (never 0, so the word is 0 only when empty),
///   bits 12..31  the byte offset of this page from the span's start,
///   bits 32..63  the span's owner (Span.owner, a ThreadCache.id, or 0).
struct SmallFacts {
  var bits: UInt

  static let none = SmallFacts(bits: 0)

  @inline(__always)
  init(bits: UInt) { self.bits = bits }

  @inline(__always)
  init(sizeClass: UInt32, pageOffset: UInt, owner: UInt32) {
    bits = UInt(sizeClass) | pageOffset | (UInt(owner) &<< 32)
  }

  @inline(__always) var isSmall: Bool { bits != 0 }
  @inline(__always) var sizeClass: UInt32 { UInt32(truncatingIfNeeded: bits & 0xff) }
  @inline(__always) var pageOffset: UInt { bits & 0xffff_f000 }
  @inline(__always) var owner: UInt32 { UInt32(truncatingIfNeeded: bits &>> 32) }
}

/// Page number -> PageEntry, as a two-level radix tree over 47-bit addresses:
/// the root (swm_pagemap_root, 2^17 slots of BSS) holds leaves of 2^18 slots
/// (4 MiB each, mmapped on first use, resident only where written).
/// Readers take no lock; a slot is written only by the owner of the page.
enum PageMap {
  static let leafBits: UInt = 18
  static let rootSlots: UInt = 1 << 17

  /// The slot of the page holding `address`; nil for an address no span
  /// ever covered (no leaf).
  @inline(__always)
  static func entry(_ address: UInt) -> UnsafeMutablePointer<PageEntry>? {
    let page = address &>> OSMemory.pageShift
    let rootIndex = page &>> leafBits
    if rootIndex >= rootSlots { return nil }
    guard let leaf = swm_pagemap_leaf(rootIndex) else { return nil }
    return leaf.assumingMemoryBound(to: PageEntry.self) + Int(page & ((1 << leafBits) - 1))
  }

  @inline(__always)
  static func lookup(_ address: UInt) -> SpanPtr? {
    entry(address)?.pointee.span
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
      while page < leafEnd {
        leaf[Int(page & ((1 << leafBits) - 1))] = PageEntry(span: span, small: .none)
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
    entry(address)!.pointee = PageEntry(span: span, small: .none)
  }

  /// Writes the small-block facts of every page of `span` (kind small, its
  /// pages already sent to it), or clears them (`clear`).
  static func setSmall(_ span: SpanPtr, clear: Bool = false) {
    let sizeClass = UInt32(span.pointee.sizeClass)
    let owner = span.pointee.owner
    var offset: UInt = 0
    while offset < span.pointee.bytes {
      let slot = entry(span.pointee.start &+ offset)!
      slot.pointee.small = clear ? .none : SmallFacts(sizeClass: sizeClass, pageOffset: offset, owner: owner)
      offset &+= OSMemory.pageSize
    }
  }

  private static func leaf(for rootIndex: UInt, create: Bool) -> UnsafeMutablePointer<PageEntry>? {
    if rootIndex >= rootSlots { return nil }
    if let leaf = swm_pagemap_leaf(rootIndex) { return leaf.assumingMemoryBound(to: PageEntry.self) }
    if !create { return nil }
    return createLeaf(rootIndex)
  }

  @inline(never)
  private static func createLeaf(_ rootIndex: UInt) -> UnsafeMutablePointer<PageEntry>? {
    let lock = swm_lock_at(swm_lock_index_pagemap())
    swm_lock(lock)
    defer { swm_unlock(lock) }
    if let leaf = swm_pagemap_leaf(rootIndex) { return leaf.assumingMemoryBound(to: PageEntry.self) }
    let bytes = (1 << leafBits) * UInt(MemoryLayout<PageEntry>.stride)
    guard let memory = swm_sys_mmap(Int(bytes)) else { return nil }
    swm_pagemap_set_leaf(rootIndex, memory)
    _ = swm_atomic_add(&Heap.state.pointee.metaBytes, bytes)
    return memory.assumingMemoryBound(to: PageEntry.self)
  }
}
