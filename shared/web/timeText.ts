/** Times as the admin page and the state sentences show them: UTC, to the minute, unambiguous across time zones. */
export function formatUtc(iso: string): string {
  const time = Date.parse(iso);
  if (Number.isNaN(time)) return iso;
  return `${new Date(time).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** "3 hours ago", "in 20 minutes": a rough distance for people, next to the exact time. */
export function relativeTime(iso: string, now: number): string {
  const time = Date.parse(iso);
  if (Number.isNaN(time)) return '';
  const minutes = Math.round((time - now) / 60_000);
  const size = Math.abs(minutes);
  if (size < 1) return 'just now';
  const amount =
    size < 90
      ? `${size} minute${size === 1 ? '' : 's'}`
      : size < 48 * 60
        ? `${Math.round(size / 60)} hours`
        : `${Math.round(size / (24 * 60))} days`;
  return minutes < 0 ? `${amount} ago` : `in ${amount}`;
}
