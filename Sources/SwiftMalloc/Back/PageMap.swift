import CShim

/// Page number -> Span, as a two-level radix tree over 47-bit addresses:
/// the root (swm_pagemap_root, 2^17 slots of BSS) holds leaves of 2^18 slots
/// (2 MiB each, mmapped on first use, resident only where written).
/// Readers take no lock; a slot is written only by the owner of the page.
enum PageMap {
  static let leafBits: UInt = 18
  static let rootSlots: UInt = 1 << 17

  @inline(__always)
  static func lookup(_ address: UInt) -> SpanPtr? {
    let page = address &>> OSMemory.pageShift
    let rootIndex = page &>> leafBits
    if rootIndex >= rootSlots { return nil }
    guard let leaf = swm_pagemap_leaf(rootIndex) else { return nil }
    return leaf[Int(page & ((1 << leafBits) - 1))]?.assumingMemoryBound(to: Span.self)
  }

  /// Sends `pages` pages from `address` to `span` (nil clears). False when a
  /// leaf could not be mapped.
  static func set(_ address: UInt, pages: UInt, to span: SpanPtr?) -> Bool {
    var page = address &>> OSMemory.pageShift
    let last = page &+ pages
    let value = span.map { RawPtr($0) }
    while page < last {
      guard let leaf = leaf(for: page &>> leafBits, create: span != nil) else {
        if span == nil { page = ((page &>> leafBits) &+ 1) &<< leafBits; continue }
        return false
      }
      let leafEnd = min(last, ((page &>> leafBits) &+ 1) &<< leafBits)
      while page < leafEnd {
        leaf[Int(page & ((1 << leafBits) - 1))] = value
        page &+= 1
      }
    }
    return true
  }

  private static func leaf(for rootIndex: UInt, create: Bool) -> UnsafeMutablePointer<UnsafeMutableRawPointer?>? {
    if rootIndex >= rootSlots { return nil }
    if let leaf = swm_pagemap_leaf(rootIndex) { return leaf }
    if !create { return nil }
    return createLeaf(rootIndex)
  }

  @inline(never)
  private static func createLeaf(_ rootIndex: UInt) -> UnsafeMutablePointer<UnsafeMutableRawPointer?>? {
    let lock = swm_lock_at(swm_lock_index_pagemap())
    swm_lock(lock)
    defer { swm_unlock(lock) }
    if let leaf = swm_pagemap_leaf(rootIndex) { return leaf }
    let bytes = (1 << leafBits) * UInt(MemoryLayout<RawPtr?>.stride)
    guard let memory = swm_sys_mmap(Int(bytes)) else { return nil }
    let leaf = memory.assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
    swm_pagemap_set_leaf(rootIndex, leaf)
    _ = swm_atomic_add(&Heap.state.pointee.metaBytes, bytes)
    return leaf
  }
}
