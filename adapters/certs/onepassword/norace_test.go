//go:build !race

package onepassword_test

const raceEnabled = false
