/**
 * The hand-written interceptor most services paste from a blog post (the README's snippet):
 * a token variable, `jwtDecode` on every request, no single flight, no margin.
 * The variable sits in a closure rather than at module level only so that each round starts cold.
 */
import axios, { type InternalAxiosRequestConfig } from "axios";
import { jwtDecode } from "jwt-decode";
import qs from "qs";

export function createNaiveInterceptor(tokenUrl: string, client_id: string, client_secret: string) {
  let token: string | undefined;
  return async (config: InternalAxiosRequestConfig): Promise<InternalAxiosRequestConfig> => {
    if (!token || jwtDecode(token).exp! * 1000 < Date.now()) {
      token = (
        await axios.post<{ access_token: string }>(tokenUrl, qs.stringify({ grant_type: "client_credentials", client_id, client_secret }))
      ).data.access_token;
    }
    config.headers.Authorization = `Bearer ${token}`;
    return config;
  };
}
