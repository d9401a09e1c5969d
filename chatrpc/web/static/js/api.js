// The unary calls: JSON POSTs to /chatrpc.v1.ChatService/<Method> (the cookie rides along).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls a unary method; resolves to its response, rejects with ApiError (or a TypeError offline). */
export async function call(method, body = {}) {
  const response = await fetch(`/chatrpc.v1.ChatService/${method}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(response.status, data.code || "unknown", data.message || response.statusText);
  }
  return data;
}

/** The signed-in user, or null when the cookie signs nobody in. */
export async function whoami() {
  const response = await fetch("/session", { credentials: "same-origin" });
  if (response.status === 401) return null;
  if (!response.ok) throw new ApiError(response.status, "unavailable", response.statusText);
  return (await response.json()).user;
}

/** A sign-in failure as a sentence for the form. */
export function signInProblem(error) {
  if (!(error instanceof ApiError)) return "Cannot reach the server. Check your connection and try again.";
  switch (error.code) {
    case "already_exists":
      return "That name is taken. Enter its password, or pick another name.";
    case "unauthenticated":
      return "Wrong password for that name.";
    case "resource_exhausted":
      return `Too many attempts: ${error.message.replace(/^.*?: /, "")}.`;
    case "invalid_argument":
      return `That name is not allowed: ${error.message}`;
    default:
      return error.message;
  }
}
