import { createMemoryStorage } from "../../src/storage/mod.ts";
import { testStorageContract } from "../support/storage_contract.ts";

testStorageContract("memory", async () => createMemoryStorage());
