/// `GET /api/v1/openapi.json`: every endpoint of the collector, the seed ones too, as an
/// OpenAPI 3.1 document. `make test` runs schemathesis against a live server with it, so an
/// answer that strays from it (a status or a body it does not list) fails the suite.
enum OpenAPI {
    static let document = #"""
    {
      "openapi": "3.1.0",
      "info": {
        "title": "Tally",
        "version": "1",
        "description": "A website-analytics collector: events in over HTTP JSON (or the binary wire protocol, not described here), reports out. Sites that have read keys need one for every report (Authorization: Bearer <key>, or ?key=); the /api/v1/sites routes exist only with --admin-token-file and need the admin token; /health and /metrics need the metrics token with --metrics-token-file."
      },
      "paths": {
        "/event": {
          "post": {
            "summary": "Send one event",
            "parameters": [{"$ref": "#/components/parameters/ack"}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EventIn"}}}},
            "responses": {
              "202": {"description": "Accepted (queued, or durable with ack=durable)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
              "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
              "403": {"$ref": "#/components/responses/Error"}, "408": {"$ref": "#/components/responses/Error"},
              "413": {"$ref": "#/components/responses/Error"}, "414": {"$ref": "#/components/responses/Error"},
              "415": {"$ref": "#/components/responses/Error"}, "429": {"$ref": "#/components/responses/Error"},
              "431": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/events": {
          "post": {
            "summary": "Send a batch of up to 10,000 events",
            "parameters": [{"$ref": "#/components/parameters/ack"}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/EventIn"}, "minItems": 1, "maxItems": 10000}}}},
            "responses": {
              "202": {"description": "Accepted", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
              "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
              "403": {"$ref": "#/components/responses/Error"}, "408": {"$ref": "#/components/responses/Error"},
              "413": {"$ref": "#/components/responses/Error"}, "414": {"$ref": "#/components/responses/Error"},
              "415": {"$ref": "#/components/responses/Error"}, "429": {"$ref": "#/components/responses/Error"},
              "431": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/stats": {
          "get": {
            "summary": "One UTC day (date) or all time: views, unique users, top paths",
            "parameters": [
              {"$ref": "#/components/parameters/site_id"},
              {"name": "date", "in": "query", "schema": {"type": "string", "format": "date"}},
              {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}},
              {"$ref": "#/components/parameters/key"}
            ],
            "responses": {
              "200": {"description": "The seed's shape", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Stats"}}}},
              "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
              "414": {"$ref": "#/components/responses/Error"}, "431": {"$ref": "#/components/responses/Error"},
              "503": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/api/v1/stats/aggregate": {
          "get": {
            "summary": "Views, visitors, users and events over a range of local days",
            "parameters": [{"$ref": "#/components/parameters/site_id"}, {"$ref": "#/components/parameters/from"}, {"$ref": "#/components/parameters/to"}, {"$ref": "#/components/parameters/tz"}, {"$ref": "#/components/parameters/key"}],
            "responses": {
              "200": {"description": "The figures", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Aggregate"}}}},
              "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
              "414": {"$ref": "#/components/responses/Error"}, "431": {"$ref": "#/components/responses/Error"},
              "422": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/api/v1/stats/timeseries": {
          "get": {
            "summary": "The figures per local hour, day or month; empty buckets as zeros",
            "parameters": [
              {"$ref": "#/components/parameters/site_id"}, {"$ref": "#/components/parameters/from"}, {"$ref": "#/components/parameters/to"}, {"$ref": "#/components/parameters/tz"},
              {"name": "interval", "in": "query", "description": "hour covers at most 92 days", "schema": {"type": "string", "enum": ["hour", "day", "month"], "default": "day"}},
              {"$ref": "#/components/parameters/key"}
            ],
            "responses": {
              "200": {"description": "One result per bucket, in order. time: YYYY-MM-DD, YYYY-MM, or YYYY-MM-DDTHH:00 local (a skipped hour is absent; a repeated hour appears twice, each with its offset, e.g. 2026-11-01T01:00-04:00)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Timeseries"}}}},
              "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
              "414": {"$ref": "#/components/responses/Error"}, "431": {"$ref": "#/components/responses/Error"},
              "422": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/api/v1/stats/breakdown": {
          "get": {
            "summary": "The values of one property, by views, then events (descending), then value (bytes ascending, null first)",
            "parameters": [
              {"$ref": "#/components/parameters/site_id"}, {"$ref": "#/components/parameters/from"}, {"$ref": "#/components/parameters/to"}, {"$ref": "#/components/parameters/tz"},
              {"name": "property", "in": "query", "required": true, "schema": {"type": "string", "enum": ["path", "event_type", "referrer", "device", "browser", "os", "utm_source", "utm_medium", "utm_campaign"]}},
              {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}},
              {"$ref": "#/components/parameters/key"}
            ],
            "responses": {
              "200": {"description": "value is null for events without the property (e.g. direct traffic for referrer)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Breakdown"}}}},
              "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
              "414": {"$ref": "#/components/responses/Error"}, "431": {"$ref": "#/components/responses/Error"},
              "422": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/api/v1/stats/realtime": {
          "get": {
            "summary": "Visitors and views in the last five minutes: the current minute (UTC) and the four before it",
            "parameters": [{"$ref": "#/components/parameters/site_id"}, {"$ref": "#/components/parameters/key"}],
            "responses": {
              "200": {"description": "The figures", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Realtime"}}}},
              "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
              "414": {"$ref": "#/components/responses/Error"}, "431": {"$ref": "#/components/responses/Error"},
              "422": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/api/v1/export": {
          "get": {
            "summary": "The raw events of the range, streamed, every stored column, bot rows marked",
            "parameters": [
              {"$ref": "#/components/parameters/site_id"}, {"$ref": "#/components/parameters/from"}, {"$ref": "#/components/parameters/to"}, {"$ref": "#/components/parameters/tz"},
              {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv", "ndjson"], "default": "csv"}},
              {"$ref": "#/components/parameters/key"}
            ],
            "responses": {
              "200": {"description": "CSV (RFC 4180, header row, CRLF; an empty field is null, \"\" an empty string) or NDJSON; columns: id, site_id, event_type, path, user_id, timestamp, ingested_at, referrer, utm_source, utm_medium, utm_campaign, device, browser, os, visitor, bot",
                      "content": {"text/csv": {"schema": {"type": "string"}}, "application/x-ndjson": {"schema": {"type": "string"}}}},
              "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
              "414": {"$ref": "#/components/responses/Error"}, "431": {"$ref": "#/components/responses/Error"},
              "503": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/api/v1/openapi.json": {
          "get": {
            "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}
          }
        },
        "/health": {
          "get": {
            "summary": "Queue, spool and store state (200 even when degraded: events are still accepted)",
            "security": [{}, {"bearer": []}],
            "responses": {
              "200": {"description": "State", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
              "401": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/metrics": {
          "get": {
            "summary": "Prometheus metrics",
            "security": [{}, {"bearer": []}],
            "responses": {
              "200": {"description": "Prometheus text format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}},
              "401": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/tally.js": {
          "get": {
            "summary": "The tracking script (gzip when accepted; ETag, 304 on If-None-Match)",
            "responses": {
              "200": {"description": "JavaScript", "content": {"text/javascript": {"schema": {"type": "string"}}}},
              "304": {"description": "Not modified"}
            }
          }
        },
        "/api/v1/sites": {
          "get": {
            "summary": "Every registered site",
            "security": [{"bearer": []}],
            "responses": {
              "200": {"description": "Sites", "content": {"application/json": {"schema": {"type": "object", "required": ["sites"], "properties": {"sites": {"type": "array", "items": {"$ref": "#/components/schemas/Site"}}}}}}},
              "401": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
            }
          },
          "post": {
            "summary": "Register a site",
            "security": [{"bearer": []}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SiteIn"}}}},
            "responses": {
              "201": {"description": "The site", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Site"}}}},
              "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
              "409": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"},
              "415": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/api/v1/sites/{id}": {
          "parameters": [{"$ref": "#/components/parameters/id"}],
          "get": {
            "summary": "One site",
            "security": [{"bearer": []}],
            "responses": {
              "200": {"description": "The site", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Site"}}}},
              "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
            }
          },
          "patch": {
            "summary": "Change a site's origins, rate or raw retention (null: back to the server's)",
            "security": [{"bearer": []}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SiteChange"}}}},
            "responses": {
              "200": {"description": "The site", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Site"}}}},
              "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
              "404": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"},
              "415": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
            }
          },
          "delete": {
            "summary": "Unregister a site (its data stays)",
            "security": [{"bearer": []}],
            "responses": {
              "204": {"description": "Gone"},
              "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/api/v1/sites/{id}/keys": {
          "parameters": [{"$ref": "#/components/parameters/id"}],
          "post": {
            "summary": "Make a read or write key (shown once)",
            "security": [{"bearer": []}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string", "enum": ["read", "write"]}}, "additionalProperties": false}}}},
            "responses": {
              "201": {"description": "The key", "content": {"application/json": {"schema": {"type": "object", "required": ["id", "kind", "key"], "properties": {"id": {"type": "string"}, "kind": {"type": "string", "enum": ["read", "write"]}, "key": {"type": "string"}}}}}},
              "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
              "404": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"},
              "415": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/api/v1/sites/{id}/keys/{key}": {
          "parameters": [{"$ref": "#/components/parameters/id"}, {"name": "key", "in": "path", "required": true, "description": "The key's id (or its hash)", "schema": {"type": "string"}}],
          "delete": {
            "summary": "Revoke a key",
            "security": [{"bearer": []}],
            "responses": {
              "204": {"description": "Revoked"},
              "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/api/v1/sites/{id}/data": {
          "parameters": [{"$ref": "#/components/parameters/id"}],
          "delete": {
            "summary": "Delete a site's data (or the days before `before`): gone from reports at once, raw rows in the background",
            "security": [{"bearer": []}],
            "parameters": [{"name": "before", "in": "query", "schema": {"type": "string", "format": "date"}}],
            "responses": {
              "202": {"description": "The purge", "content": {"application/json": {"schema": {"type": "object", "required": ["purge"], "properties": {"purge": {"$ref": "#/components/schemas/Purge"}}}}}},
              "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
            }
          }
        },
        "/api/v1/sites/{id}/data/purges": {
          "parameters": [{"$ref": "#/components/parameters/id"}],
          "get": {
            "summary": "The site's purges; done once its raw rows are gone",
            "security": [{"bearer": []}],
            "responses": {
              "200": {"description": "Purges", "content": {"application/json": {"schema": {"type": "object", "required": ["purges"], "properties": {"purges": {"type": "array", "items": {"$ref": "#/components/schemas/Purge"}}}}}}},
              "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
            }
          }
        }
      },
      "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "parameters": {
          "site_id": {"name": "site_id", "in": "query", "required": true, "schema": {"type": "string", "minLength": 1, "maxLength": 128}},
          "from": {"name": "from", "in": "query", "description": "First local day (default: 29 days before to)", "schema": {"type": "string", "format": "date"}},
          "to": {"name": "to", "in": "query", "description": "Last local day, inclusive (default: today in tz); at most 10 years after from", "schema": {"type": "string", "format": "date"}},
          "tz": {"name": "tz", "in": "query", "description": "IANA time zone such as America/New_York (default UTC)", "schema": {"type": "string", "default": "UTC"}},
          "key": {"name": "key", "in": "query", "description": "A read key of the site (or Authorization: Bearer)", "schema": {"type": "string"}},
          "ack": {"name": "ack", "in": "query", "schema": {"type": "string", "enum": ["queued", "durable"], "default": "queued"}},
          "id": {"name": "id", "in": "path", "required": true, "schema": {"type": "string", "minLength": 1, "maxLength": 128}}
        },
        "responses": {
          "Error": {"description": "What was wrong, every problem named", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        },
        "schemas": {
          "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}, "details": {"type": "array", "items": {"type": "string"}}}},
          "EventIn": {
            "type": "object", "required": ["site_id", "event_type"],
            "properties": {
              "site_id": {"type": "string", "minLength": 1, "maxLength": 128}, "event_type": {"type": "string", "minLength": 1, "maxLength": 64},
              "path": {"type": ["string", "null"], "maxLength": 2048}, "user_id": {"type": ["string", "null"], "maxLength": 256},
              "timestamp": {"type": ["string", "null"], "description": "RFC 3339; the receive time when absent"},
              "referrer": {"type": ["string", "null"], "maxLength": 2048}, "utm_source": {"type": ["string", "null"], "maxLength": 256},
              "utm_medium": {"type": ["string", "null"], "maxLength": 256}, "utm_campaign": {"type": ["string", "null"], "maxLength": 256}
            }
          },
          "Accepted": {"type": "object", "required": ["message", "accepted", "ack"], "properties": {"message": {"type": "string"}, "accepted": {"type": "integer", "minimum": 0}, "ack": {"type": "string", "enum": ["queued", "durable"]}}},
          "Stats": {
            "type": "object", "required": ["site_id", "date", "total_views", "unique_users", "top_paths"],
            "properties": {
              "site_id": {"type": "string"}, "date": {"type": ["string", "null"]}, "total_views": {"type": "integer"}, "unique_users": {"type": "integer"},
              "top_paths": {"type": "array", "items": {"type": "object", "required": ["path", "views"], "properties": {"path": {"type": "string"}, "views": {"type": "integer"}}}}
            }
          },
          "Range": {
            "type": "object", "required": ["site_id", "from", "to", "tz"],
            "properties": {"site_id": {"type": "string"}, "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"}, "tz": {"type": "string"}}
          },
          "Aggregate": {
            "allOf": [{"$ref": "#/components/schemas/Range"}, {
              "type": "object", "required": ["views", "visitors", "users", "events"],
              "properties": {"views": {"type": "integer", "minimum": 0}, "visitors": {"type": "integer", "minimum": 0}, "users": {"type": "integer", "minimum": 0}, "events": {"type": "integer", "minimum": 0}}
            }]
          },
          "Timeseries": {
            "allOf": [{"$ref": "#/components/schemas/Range"}, {
              "type": "object", "required": ["interval", "results"],
              "properties": {
                "interval": {"type": "string", "enum": ["hour", "day", "month"]},
                "results": {"type": "array", "items": {"type": "object", "required": ["time", "views", "visitors", "users"],
                  "properties": {"time": {"type": "string"}, "views": {"type": "integer", "minimum": 0}, "visitors": {"type": "integer", "minimum": 0}, "users": {"type": "integer", "minimum": 0}}}}
              }
            }]
          },
          "Breakdown": {
            "allOf": [{"$ref": "#/components/schemas/Range"}, {
              "type": "object", "required": ["property", "results"],
              "properties": {
                "property": {"type": "string"},
                "results": {"type": "array", "items": {"type": "object", "required": ["value", "views", "visitors", "events"],
                  "properties": {"value": {"type": ["string", "null"]}, "views": {"type": "integer", "minimum": 0}, "visitors": {"type": "integer", "minimum": 0}, "events": {"type": "integer", "minimum": 0}}}}
              }
            }]
          },
          "Realtime": {"type": "object", "required": ["site_id", "visitors", "views"], "properties": {"site_id": {"type": "string"}, "visitors": {"type": "integer", "minimum": 0}, "views": {"type": "integer", "minimum": 0}}},
          "Health": {
            "type": "object",
            "required": ["status", "queue_depth", "idle", "queue_capacity", "spool_backlog_files", "spool_backlog_bytes", "spool_writable", "quarantined_files", "store_error", "events_stored"],
            "properties": {
              "status": {"type": "string", "enum": ["healthy", "degraded"]}, "queue_depth": {"type": "integer"}, "idle": {"type": "boolean"},
              "queue_capacity": {"type": "integer"}, "spool_backlog_files": {"type": "integer"}, "spool_backlog_bytes": {"type": "integer"},
              "spool_writable": {"type": "boolean"}, "quarantined_files": {"type": "integer"}, "store_error": {"type": ["string", "null"]},
              "events_stored": {"type": ["integer", "null"]}
            }
          },
          "SiteIn": {
            "type": "object", "required": ["id"],
            "properties": {
              "id": {"type": "string", "minLength": 1, "maxLength": 128}, "origins": {"type": "array", "items": {"type": "string"}},
              "rate": {"type": ["integer", "null"], "minimum": 1}, "raw_retention_days": {"type": ["integer", "null"], "minimum": 1}
            }
          },
          "SiteChange": {
            "type": "object",
            "properties": {"origins": {"type": "array", "items": {"type": "string"}}, "rate": {"type": ["integer", "null"], "minimum": 1}, "raw_retention_days": {"type": ["integer", "null"], "minimum": 1}}
          },
          "Site": {
            "type": "object", "required": ["id", "origins", "rate", "raw_retention_days", "keys", "created_at", "updated_at"],
            "properties": {
              "id": {"type": "string"}, "origins": {"type": "array", "items": {"type": "string"}}, "rate": {"type": ["integer", "null"]},
              "raw_retention_days": {"type": ["integer", "null"]},
              "keys": {"type": "array", "items": {"type": "object", "required": ["id", "kind", "created_at"], "properties": {"id": {"type": "string"}, "kind": {"type": "string", "enum": ["read", "write"]}, "created_at": {"type": "string"}}}},
              "created_at": {"type": "string"}, "updated_at": {"type": "string"}
            }
          },
          "Purge": {
            "type": "object", "required": ["id", "site_id", "before", "recorded_at", "done"],
            "properties": {"id": {"type": "integer"}, "site_id": {"type": "string"}, "before": {"type": ["string", "null"], "format": "date"}, "recorded_at": {"type": "string"}, "done": {"type": "boolean"}}
          }
        }
      }
    }
    """#
}
