// Package postgres is the PostgreSQL storage.Store (placeholder while being written).
package postgres

import _ "github.com/jackc/pgx/v5/pgxpool"
