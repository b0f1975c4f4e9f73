//go:build race

package conformance

// raceEnabled builds the programs under test with the race detector when
// the test itself runs under it.
const raceEnabled = true
