// How the Dapp shows numbers to people.

/** Sizes as people read them: 936 B, 12.4 KiB, 16 MiB. */
export function humanBytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) return "?";
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 || Number.isInteger(value) ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}
