import CShim

// See Malloc.swift for an overview.

/// Where a request goes: one decision, made here, for malloc, calloc,
/// realloc, the aligned family and secure mode.
///
///   size class   size + overhead <= SWM_MAX_SMALL and size below the mmap
///                threshold; for an alignment above 16, the smallest class
///                whose blocks are aligned to it (spans start on a page and
///                blocks sit at multiples of their size), up to a page
///   mmap block   size (plus the alignment slack) >= M_MMAP_THRESHOLD,
///                unless M_MMAP_MAX is 0
///   page run     everything between
///   zero size    size 0: a pointer nobody may touch (ZeroBlocks)
///   impossible   size or alignment >= Heap.maxRequest: NULL and ENOMEM
///
/// `overhead` is what each small block carries beyond the request (secure
/// mode's canary and size word, Canary.overhead).
enum Route {
  /// Written by Options under the init lock; read without it (a request
  /// that races a mallopt may take either route).
  struct State {
    /// Requests up to here take the malloc fast path: min(SWM_MAX_SMALL,
    /// mmapThreshold - 1), 0 when the thread caches are off (secure mode).
    var smallLimit: UInt
    var mmapThreshold: UInt
    /// false after mallopt(M_MMAP_MAX, 0): every request is served from the heap.
    var mmapEnabled: Bool
  }

  enum Destination {
    case sizeClass(UInt32)
    case pageRun
    case mmap
    case zeroSize
    case impossible
  }

  @inline(__always)
  static func decide(size: UInt, alignment: UInt = 16, overhead: UInt = 0) -> Destination {
    if size >= Heap.maxRequest || alignment >= Heap.maxRequest { return .impossible }
    if size == 0 { return .zeroSize }
    let route = Heap.state.pointee.route
    let mmapFrom = route.mmapEnabled ? route.mmapThreshold : UInt.max
    if size < mmapFrom, let c = smallClass(size: size, alignment: alignment, overhead: overhead) { return .sizeClass(c) }
    let slack = alignment > 16 ? alignment : 0
    return size &+ slack >= mmapFrom ? .mmap : .pageRun
  }

  /// The size class a request of `size` bytes gets, thresholds aside: the
  /// class of size + overhead, or for an alignment above 16 the smallest
  /// class at least that large whose size the alignment divides; nil when
  /// no class serves it. free_sized and free_aligned_sized compare a
  /// block's class with it. (size < Heap.maxRequest.)
  @inline(__always)
  static func smallClass(size: UInt, alignment: UInt = 16, overhead: UInt = 0) -> UInt32? {
    let need = size &+ overhead
    if need > UInt(SWM_MAX_SMALL) || alignment > OSMemory.pageSize { return nil }
    if alignment <= 16 { return swm_size_to_class(Int(bitPattern: need)) }
    var c = swm_size_to_class(Int(bitPattern: max(need, alignment)))
    while c < UInt32(SWM_NUM_CLASSES) && UInt(swm_class_to_size(c)) % alignment != 0 { c &+= 1 }
    return c < UInt32(SWM_NUM_CLASSES) ? c : nil
  }

  /// Recomputes smallLimit after a threshold or the mitigations changed
  /// (init lock held).
  static func update() {
    let state = Heap.state
    let threshold = state.pointee.route.mmapEnabled ? state.pointee.route.mmapThreshold : UInt.max
    state.pointee.route.smallLimit = state.pointee.mitigations.noThreadCache
      ? 0 : min(UInt(SWM_MAX_SMALL), threshold == 0 ? 0 : threshold &- 1)
  }
}
