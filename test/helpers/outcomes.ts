/** How settled requests and promises came out, for assertions that read as the user sees them. */
import axios from "axios";

/** What each settled request came to: its status, or the error's name and message when there was no response. */
export function outcomes(results: PromiseSettledResult<{ status: number }>[]): (number | string)[] {
  return results.map((result) => {
    if (result.status === "fulfilled") return result.value.status;
    const reason: unknown = result.reason;
    if (axios.isAxiosError(reason) && reason.response !== undefined) return reason.response.status;
    return reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason);
  });
}

/** What `promise` rejected with, or the string "no error". */
export function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => "no error",
    (error: unknown) => error,
  );
}
