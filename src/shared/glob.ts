/**
 * Model name patterns, as routes and budgets name models: `*` stands for any
 * characters, everything else for itself.
 *
 * @module
 */

const compiled = new Map<string, RegExp>();

/**
 * Whether `text` matches `pattern` whole.
 *
 * @example
 * ```ts
 * globMatches("gpt-4*", "gpt-4o-mini"); // true
 * ```
 */
export function globMatches(pattern: string, text: string): boolean {
  let expression = compiled.get(pattern);
  if (!expression) {
    const source = pattern.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*");
    expression = new RegExp(`^${source}$`, "s");
    if (compiled.size < 1024) compiled.set(pattern, expression);
  }
  return expression.test(text);
}
