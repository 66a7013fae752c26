// Package sqlite is the embedded default storage backend (placeholder while being written).
package sqlite

import _ "modernc.org/sqlite"
