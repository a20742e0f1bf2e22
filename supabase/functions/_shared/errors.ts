/**
 * Errors as values. Every failure the edge functions report has a stable,
 * machine-readable `code` (snake_case, part of the public API), a human
 * `message`, and the HTTP `status` it becomes. `detail` and `hint` carry the
 * Postgres DETAIL/HINT of business errors (e.g. required vs available credits).
 */
export interface AppError {
  readonly code: string;
  readonly message: string;
  readonly status: number;
  readonly detail?: string;
  readonly hint?: string;
  /** Seconds a client should wait before retrying (becomes `Retry-After`). */
  readonly retryAfter?: number;
}

export type Ok<T> = { readonly ok: true; readonly value: T };
export type Err<E> = { readonly ok: false; readonly error: E };
export type Result<T, E = AppError> = Ok<T> | Err<E>;

export function ok<T>(value: T): Ok<T> {
  return { ok: true, value };
}

export function err<E>(error: E): Err<E> {
  return { ok: false, error };
}

/** Builds an AppError, leaving out optional fields that are absent. */
export function appError(
  code: string,
  message: string,
  status: number,
  extra: { detail?: string; hint?: string; retryAfter?: number } = {},
): AppError {
  const error: {
    code: string;
    message: string;
    status: number;
    detail?: string;
    hint?: string;
    retryAfter?: number;
  } = { code, message, status };
  if (extra.detail) error.detail = extra.detail;
  if (extra.hint) error.hint = extra.hint;
  if (extra.retryAfter !== undefined) error.retryAfter = extra.retryAfter;
  return error;
}
