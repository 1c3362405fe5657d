import { createMemoryStorage } from "../src/storage/mod.ts";
import { testStorageContract } from "./_storage_contract.ts";

testStorageContract("memory", async () => createMemoryStorage());
