/** Our version, as the `%V` magic placeholder expands it (uWSGI puts its own version there). Kept equal to package.json by a unit test. */
export const EMPEROR_VERSION = '0.1.0';
