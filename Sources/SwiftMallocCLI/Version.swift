// The version the tool reports. Kept in step with SWIFTMALLOC_VERSION in
// Sources/CShim/exports/swiftmalloc.h (Tests/cli/run.sh checks it).
let generatedVersion = "0.1.0"
