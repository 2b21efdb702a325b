/**
 * The one place that starts a node:http server on 127.0.0.1 with a port the OS picks: the demo, the
 * test fixtures, test/helpers/servers.ts and bench/servers.ts all listen through it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A listening loopback server. */
export interface LoopbackServer {
  /** e.g. http://127.0.0.1:40123 */
  origin: string;
  /** For what differs between callers: keep-alive timeouts, `unref()`. */
  server: Server;
  /**
   * Stops listening and drops keep-alive connections too, which would otherwise keep the process
   * alive for the keep-alive timeout; resolves once closed. Calling it again is harmless.
   */
  close: () => Promise<void>;
}

/** Starts `handler` on 127.0.0.1, port 0. */
export async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<LoopbackServer> {
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        // A second close gets ERR_SERVER_NOT_RUNNING here: the server is closed either way.
        server.close(() => resolve());
      }),
  };
}
