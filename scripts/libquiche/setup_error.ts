/** An expected setup failure; its message is meant for the user as is. */
export class SetupError extends Error {
  override name = "SetupError";
}
