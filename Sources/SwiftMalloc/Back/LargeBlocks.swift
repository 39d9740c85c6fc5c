import CShim

// See Malloc.swift for an overview.

/// Requests of M_MMAP_THRESHOLD bytes and up: one private anonymous mapping
/// each, page aligned (or aligned further for memalign), munmapped on free and
/// resized with mremap. A Span struct of kind mmap describes each one, and
/// the page map knows its first page only (the block start), so an interior
/// pointer is rejected as invalid.
enum LargeBlocks {
  /// Counters are atomic; the tombstone is written once.
  struct State {
    var bytes: UInt
    var count: UInt
    /// The most of each there ever were at once (malloc_stats' "max mmap").
    var bytesPeak: UInt
    var countPeak: UInt
    /// Statistics: the system calls made for mmap blocks.
    var mmapCalls: UInt
    var munmapCalls: UInt
    var mremapCalls: UInt
    /// Guard pages made or removed (madvise or mprotect).
    var guardCalls: UInt
    /// One shared Span of kind `unmapped`; the page map sends the first page
    /// of every freed mmap block here until the address is mapped again.
    var tombstone: Span
    /// Freed blocks kept for reuse (LargeBlocks+Cache.swift).
    var cache: Cache
  }

  @inline(__always) static var state: UnsafeMutablePointer<State> {
    withUnsafeMutablePointer(to: &Heap.state.pointee.large) { $0 }
  }

  @inline(__always)
  static var tombstone: SpanPtr {
    let span = withUnsafeMutablePointer(to: &state.pointee.tombstone) { $0 }
    span.pointee.kind = SpanKind.unmapped
    return span
  }

  /// `zeroed`: true for calloc (fresh mappings read zero), nil for malloc
  /// (MALLOC_PERTURB_ fills the block then).
  /// In secure mode (Mitigations.guardPages) the block has a guard page on
  /// each side: the one after it is counted in the span (`guarded`, see
  /// Span.userPages), the one before it is unmapped with it. In the default
  /// mode, where the kernel makes guards for free (MADV_GUARD_INSTALL, Linux
  /// 6.13+: no extra mapping), the block gets the guard after it only, so an
  /// overflow past a large block faults instead of reaching the next mapping.
  static func allocate(_ size: UInt, alignment: UInt, zeroed: Bool?) -> RawPtr? {
    if let p = reuse(size, alignment: alignment, zeroed: zeroed == true) { return p }
    let guards = Heap.state.pointee.mitigations.guardPages
    let freeGuard = !guards && swm_guard_is_free() != 0
    let userBytes = max(OSMemory.pageSize, (size &+ OSMemory.pageMask) & ~OSMemory.pageMask)
    let bytes = guards || freeGuard ? userBytes &+ OSMemory.pageSize : userBytes  // trailing guard included
    var lead = guards ? OSMemory.pageSize : 0                         // leading guard
    let extra = alignment > OSMemory.pageSize ? alignment : 0
    guard size < Heap.maxRequest, let mapped = map(Int(lead &+ bytes &+ extra)) else {
      swm_errno_set(swm_ENOMEM())
      return nil
    }
    let mappedStart = UInt(bitPattern: mapped)
    let mappedEnd = mappedStart &+ lead &+ bytes &+ extra
    var start = mappedStart &+ lead
    if extra != 0 { start = (start &+ alignment &- 1) & ~(alignment &- 1) }
    if start &- lead > mappedStart { unmap(mapped, Int(start &- lead &- mappedStart)) }
    if start &+ bytes < mappedEnd { unmap(RawPtr(bitPattern: start &+ bytes), Int(mappedEnd &- start &- bytes)) }
    var guarded = false
    if guards {
      guarded = installGuards(before: start, after: start &+ userBytes)
      // No guards (budget spent): the trailing page is simply part of the
      // block, and the leading one goes back at once.
      if !guarded { unmap(RawPtr(bitPattern: start &- lead), Int(lead)) }
      lead = guarded ? lead : 0
    } else if freeGuard {
      // without it (the kernel refused) the page is simply part of the block
      guarded = countedGuard(install: true, RawPtr(bitPattern: start &+ userBytes), Int(OSMemory.pageSize)) != 0
    }
    guard let span = Meta.allocSpan() else {
      unmap(RawPtr(bitPattern: start &- lead), Int(lead &+ bytes))
      if guarded && guards { swm_guard_unmapped(2) }
      swm_errno_set(swm_ENOMEM())
      return nil
    }
    span.pointee.start = start
    span.pointee.pages = bytes &>> OSMemory.pageShift
    span.pointee.kind = SpanKind.mmap
    span.pointee.guarded = guarded
    if !PageMap.set(start, pages: 1, to: span) {
      Meta.freeSpan(span)
      unmap(RawPtr(bitPattern: start &- lead), Int(lead &+ bytes))
      if guarded && guards { swm_guard_unmapped(2) }
      swm_errno_set(swm_ENOMEM())
      return nil
    }
    swm_atomic_max(&state.pointee.bytesPeak, swm_atomic_add(&state.pointee.bytes, bytes) &+ bytes)
    swm_atomic_max(&state.pointee.countPeak, swm_atomic_add(&state.pointee.count, 1) &+ 1)
    Stats.noteGrowth()
    if zeroed == nil { Mitigations.perturb(RawPtr(bitPattern: start)!, size, freed: false) }
    return RawPtr(bitPattern: start)  // fresh mappings read zero: no memset for calloc
  }

  /// Unmaps the block, or keeps it for reuse (the caller has told Options,
  /// for the dynamic threshold).
  static func free(_ span: SpanPtr) {
    if keep(span) { return }
    let start = span.pointee.start
    let bytes = span.pointee.bytes
    // only secure mode's blocks have a leading guard page
    let lead = span.pointee.guarded && Heap.state.pointee.mitigations.guardPages ? OSMemory.pageSize : 0
    _ = PageMap.set(start, pages: 1, to: tombstone)
    Meta.freeSpan(span)
    unmap(RawPtr(bitPattern: start &- lead), Int(lead &+ bytes))
    if lead != 0 { swm_guard_unmapped(2) }
    _ = swm_atomic_add(&state.pointee.bytes, 0 &- bytes)
    _ = swm_atomic_add(&state.pointee.count, 0 &- 1)
  }

  /// Makes the pages before and after a block guards: both or neither.
  private static func installGuards(before: UInt, after: UInt) -> Bool {
    let page = Int(OSMemory.pageSize)
    guard makeGuard(RawPtr(bitPattern: after), page) != 0 else { return false }
    if makeGuard(RawPtr(bitPattern: before &- OSMemory.pageSize), page) != 0 { return true }
    _ = removeGuard(RawPtr(bitPattern: after), page)
    return false
  }

  /// Resizes with mremap (moving if need be). nil, with the block intact,
  /// when the kernel refuses.
  /// A default-mode guard moves to the new end: removed first (it must not
  /// end up inside the block), made again after.
  static func resize(_ span: SpanPtr, to size: UInt) -> RawPtr? {
    let page = OSMemory.pageSize
    let guarded = span.pointee.guarded
    let bytes = max(page, (size &+ OSMemory.pageMask) & ~OSMemory.pageMask) &+ (guarded ? page : 0)
    let old = span.pointee.start
    let oldBytes = span.pointee.bytes
    if bytes == oldBytes { return RawPtr(bitPattern: old) }
    if guarded { countedGuard(install: false, RawPtr(bitPattern: old &+ oldBytes &- page), Int(page)) }
    guard let moved = remap(RawPtr(bitPattern: old), Int(oldBytes), Int(bytes), 1) else {
      if guarded { span.pointee.guarded = countedGuard(install: true, RawPtr(bitPattern: old &+ oldBytes &- page), Int(page)) != 0 }
      return nil
    }
    let start = UInt(bitPattern: moved)
    if guarded { span.pointee.guarded = countedGuard(install: true, RawPtr(bitPattern: start &+ bytes &- page), Int(page)) != 0 }
    if start != old {
      _ = PageMap.set(old, pages: 1, to: tombstone)
      if !PageMap.set(start, pages: 1, to: span) {
        Diagnostics.fatal("realloc()", "page map exhausted for", moved)
      }
    }
    span.pointee.start = start
    span.pointee.pages = bytes &>> OSMemory.pageShift
    swm_atomic_max(&state.pointee.bytesPeak, swm_atomic_add(&state.pointee.bytes, bytes &- oldBytes) &+ (bytes &- oldBytes))
    if bytes > oldBytes { Stats.noteGrowth() }
    return moved
  }

  /// Secure mode's realloc growth (Mitigations.guardPages: a block that
  /// grows moves, to fresh guards): a new block of `size` bytes, with the
  /// old block's pages moved to its start by mremap instead of copied, then
  /// the old block (and its guards) unmapped. nil, with the old block
  /// intact, when the new block cannot be had or the pages cannot move.
  static func moveGrowing(_ span: SpanPtr, to size: UInt) -> RawPtr? {
    let old = RawPtr(bitPattern: span.pointee.start)
    let oldBytes = Int(span.pointee.userPages &<< OSMemory.pageShift)
    guard let q = allocate(size, alignment: OSMemory.pageSize, zeroed: nil) else { return nil }
    count(&state.pointee.mremapCalls)
    if swm_sys_mremap_to(old, oldBytes, q) == nil {
      free(PageMap.lookup(UInt(bitPattern: q))!)  // allocate put it in the page map
      return nil
    }
    free(span)
    return q
  }

  // MARK: - the system calls, counted for the statistics

  private static func count(_ counter: UnsafeMutablePointer<UInt>) { _ = swm_atomic_add(counter, 1) }

  private static func map(_ length: Int) -> RawPtr? {
    count(&state.pointee.mmapCalls)
    return swm_sys_mmap(length)
  }

  private static func unmap(_ p: RawPtr?, _ length: Int) {
    count(&state.pointee.munmapCalls)
    _ = swm_sys_munmap(p, length)
  }

  private static func remap(_ p: RawPtr?, _ old: Int, _ new: Int, _ mayMove: Int32) -> RawPtr? {
    count(&state.pointee.mremapCalls)
    return swm_sys_mremap(p, old, new, mayMove)
  }

  /// Secure mode's guards (swm_guard_install, swm_guard_remove).
  private static func makeGuard(_ p: RawPtr?, _ length: Int) -> Int32 {
    count(&state.pointee.guardCalls)
    return swm_guard_install(p, length)
  }

  private static func removeGuard(_ p: RawPtr?, _ length: Int) -> Int32 {
    count(&state.pointee.guardCalls)
    return swm_guard_remove(p, length)
  }

  /// The default mode's free guard after a block (MADV_GUARD_INSTALL/REMOVE):
  /// for an install, 1 when it was made.
  @discardableResult
  private static func countedGuard(install: Bool, _ p: RawPtr?, _ length: Int) -> Int32 {
    count(&state.pointee.guardCalls)
    if install { return swm_guard_install_free(p, length) }
    swm_guard_remove_free(p, length)
    return 0
  }
}
