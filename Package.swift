// swift-tools-version:6.0
// The hosted build of the allocator core, for `swift test`. The shipped
// library is built by the Makefile (Embedded Swift, no runtime); SwiftPM's
// own .dynamic product would link libswiftCore and export runtime symbols, so
// this package declares no library product for it.
import PackageDescription

let package = Package(
  name: "swiftmalloc",
  targets: [
    // The C shim without its exports: a test process keeps glibc's malloc
    // and reaches ours through the swmcore_ functions.
    .target(
      name: "CShim",
      path: "Sources/CShim",
      exclude: ["exports", "secure"],
      sources: ["shim.c", "state.c", "secure_off.c"],
      publicHeadersPath: "include"
    ),
    .target(
      name: "SwiftMalloc",
      dependencies: ["CShim"],
      path: "Sources/SwiftMalloc"
    ),
    .testTarget(
      name: "SwiftMallocTests",
      dependencies: ["SwiftMalloc", "CShim"],
      path: "Tests/SwiftMallocTests"
    ),
  ]
)
