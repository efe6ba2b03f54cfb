// What a storefront developer does with a client generated from /openapi.json: read the
// demo's catalog, find a free time, make a booking draft and confirm it. Every path, body and
// answer is typed by the generated `api.d.ts`, so this compiles only while the document
// describes these operations as this code uses them.
//
//   node dist/demo.js http://127.0.0.1:8080      (.ci/client starts the demo and runs it)

import createClient from "openapi-fetch";

import type { components, paths } from "./api.js";

type Draft = components["schemas"]["Draft"];
type Problem = components["schemas"]["Problem"];

const baseUrl = process.argv[2] ?? process.env.MANGO_URL ?? "http://127.0.0.1:8080";
const store = createClient<paths>({ baseUrl, headers: { "X-Store-Id": "demo" } });

function fail(step: string, error: Problem | undefined, status: number): never {
  throw new Error(`${step}: HTTP ${status} ${error?.code ?? ""} ${error?.detail ?? ""}`);
}

async function main(): Promise<void> {
  const settings = await store.GET("/api/v1/store");
  if (!settings.data) fail("store", settings.error, settings.response.status);
  console.log(`store: ${settings.data.data.name} (${settings.data.data.slug})`);

  const services = await store.GET("/api/v1/{resource}", {
    params: { path: { resource: "services" }, query: { limit: 50 } },
  });
  if (!services.data) fail("services", services.error, services.response.status);
  console.log(
    `services: ${services.data.data.length} (x-cache ${services.response.headers.get("x-cache")})`,
  );
  const service = services.data.data.find((item) => item["is_active"] === true);
  if (!service) throw new Error("the demo has no active service");

  const item = await store.GET("/api/v1/{resource}/{id}", {
    params: { path: { resource: "services", id: service.id } },
  });
  if (!item.data) fail("service", item.error, item.response.status);
  console.log(`service: ${service.id} ${String(item.data.data["name"])}`);

  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
  const free = await store.GET("/api/v1/availability", {
    params: { query: { service_id: service.id, date: tomorrow, days: 7 } },
  });
  if (!free.data) fail("availability", free.error, free.response.status);
  const slot = free.data.data.slots.find((s) => Date.parse(s.start_at) > Date.now());
  if (!slot) throw new Error(`no free time for ${service.id} in the week from ${tomorrow}`);

  const created = await store.POST("/api/v1/booking/draft", {
    params: { header: { "Idempotency-Key": `client-demo-${Date.now()}` } },
    body: {
      service_id: service.id,
      staff_id: slot.staff_id ?? null,
      start_at: slot.start_at,
      customer: { name: "Client Demo", phone: "+7 701 000 00 00" },
      notes: "made by the generated TypeScript client",
    },
  });
  if (!created.data) fail("draft", created.error, created.response.status);
  const draft: Draft = created.data.data;
  console.log(`draft: ${draft.id} ${draft.status} ${draft.start_at} until ${draft.expires_at}`);

  const confirmed = await store.POST("/api/v1/booking/draft/{id}/confirm", {
    params: { path: { id: draft.id } },
  });
  if (!confirmed.data) fail("confirm", confirmed.error, confirmed.response.status);
  const booking = confirmed.data.data.booking;
  if (confirmed.data.data.status !== "confirmed" || !booking) {
    throw new Error(`confirm answered status ${confirmed.data.data.status}`);
  }
  console.log(`confirmed: ${draft.id}, Biz booking ${JSON.stringify(booking)}`);

  const read = await store.GET("/api/v1/booking/draft/{id}", {
    params: { path: { id: draft.id } },
  });
  if (read.data?.data.status !== "confirmed") fail("read back", read.error, read.response.status);
  console.log("ok: catalog read, draft created and confirmed through the generated client");
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
