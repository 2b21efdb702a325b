/** A node:http server on 127.0.0.1 with a port the OS picks; used by the demo and a test fixture. */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A listening loopback server: its origin, and a close that also drops keep-alive connections. */
export interface LoopbackServer {
  origin: string;
  close: () => void;
}

/** Starts `handler` on 127.0.0.1, port 0. */
export function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<LoopbackServer> {
  const server = createServer(handler);
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () => {
          server.closeAllConnections();
          server.close();
        },
      }),
    ),
  );
}
