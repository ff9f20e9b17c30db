import { IsIn, IsString, Matches, MaxLength, MinLength } from 'class-validator';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from '../credentials';
import { ROLES, type Role } from '../user.entity';

export class CreateUserDto {
  /** 1-64 letters, digits, `.`, `_`, `@` or `-`. @example operator1 */
  @IsString()
  @Matches(/^[A-Za-z0-9._@-]{1,64}$/, { message: 'username must be 1-64 letters, digits, . _ @ or -' })
  username: string;

  /** At least 12 characters. @example a-long-passphrase */
  @IsString()
  @MinLength(MIN_PASSWORD_LENGTH, { message: `password must be at least ${MIN_PASSWORD_LENGTH} characters` })
  @MaxLength(MAX_PASSWORD_LENGTH)
  password: string;

  /** viewer and operator may sign in but use no admin route; admin may use every route. @example admin */
  @IsIn(ROLES, { message: `role must be one of ${ROLES.join(', ')}` })
  role: Role;
}
